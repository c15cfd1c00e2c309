"""The lake: every stored event as a row of one schema, in Parquet files partitioned by plugin and day
(Firehose writes them on AWS, ``make run`` locally), for SQL the aggregates cannot answer."""
