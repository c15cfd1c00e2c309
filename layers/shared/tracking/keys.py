"""Every key this service builds, in one place: the partition and sort keys of its four tables, the
kinds of item that share them, and the names it gives internal keys. Parts of a key are joined by a
control character (``SEP``, shown as ␟ in the docs) that no identifier may hold, so no two layouts
can produce the same key. Pure: no AWS; storage builds its items with these, and the few modules that
name an internal key (a funnel step's rollup, a key's quota) take it from here.

Events table::

    plugin ␟ user                  a user's events this service named, and their index items (x:...)
    plugin ␟ ␟ event id            an event the client named (messageId, order, content digest)
    ␟ rejections ␟ plugin ␟ nn     recorded rejections, by time (16 partitions by a hash of the key)
    ␟ deletions ␟ plugin           deletion steps, by deletion and step

Aggregates table (``nnn``: a suffix that spreads one plugin's writes, see below)::

    u ␟ plugin ␟ nnn  /  user ␟ key     an aggregate;  user ␟ ␟ profile: its id's profile
                       user ␟ ␟ profile ␟ nn   a part of a large profile (its linked ids, groups, traits)
    f ␟ plugin ␟ nnn  /  user           a user's funnel progress
    r ␟ plugin ␟ nnn  /  day ␟ key ␟ group ␟ shard     a daily rollup of one shard
    d ␟ plugin  /  day ␟ key ␟ group ␟ reset     a day's rollup: shards' rollups folded in once idle
    s ␟ plugin  /  suffixes             which suffixes hold a plugin's items (read before a listing)

A busy plugin's per-user items are spread over ``USER_SUFFIXES`` partition keys by a hash of the user
(every item of one user under one of them), its rollups over ``ROLLUP_SUFFIXES`` by a hash of the
shard: no partition key takes more than its share of one plugin's writes (docs/DESIGN.md, "Key
suffixes").

Control table::

    plugin ␟ plugin / config | people | stamp  a plugin's config, lists about people, and their stamp
    writekey ␟ key, apikey ␟ hash, keys ␟ plugin / key id, ratelimit ␟ who / window
    plugins / plugin id                        the plugin listing; plugins ␟ count / unconfigured
    destinations ␟ plugin / destination id     a plugin's destinations (events out)

Deliveries table (``nn``: one of ``DELIVERY_SUFFIXES``)::

    m ␟ plugin ␟ destination ␟ message / -     a message's delivery: a lease while sent, then delivered
    f ␟ plugin ␟ destination ␟ nn / message   a message that was not delivered (the failures list)
    s ␟ plugin ␟ destination ␟ nn / -         a share of the destination's counters
    x ␟ plugin ␟ id / -                        an id of a forgotten person (its events are not sent)
"""

from __future__ import annotations

import hashlib
import zlib

SEP = "\x1f"


def spread(value: str, buckets: int) -> int:
    """A stable bucket of ``value`` (the same in every process: Python's own ``hash`` is salted)."""
    digest = hashlib.blake2b(value.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


# -- kinds of item (the ``kind`` attribute) that are not events ---------------------------------------
REJECTED_KIND = "rejected"
INDEX_KIND = "index"
DELETION_KIND = "deletion"
PROFILE_KIND = "profile"
PROFILE_PART_KIND = "profile_part"
FUNNEL_KIND = "funnel"
CLAIM_KIND = "claim"

# -- events table -------------------------------------------------------------------------------------


def event_pk(plugin_id: str, user_id: str) -> str:
    """A user's partition: every event of the user (and, from an older version, index items listing
    the user's events stored under their own ids)."""
    return f"{plugin_id}{SEP}{user_id}"


def client_id_pk(plugin_id: str, event_id: str) -> str:
    """An id the client chose, unique per plugin (no identifier starts with the separator): the
    claim of the id, naming the partition its event is in; or, written by an older version, the
    event itself."""
    return f"{plugin_id}{SEP}{SEP}{event_id}"


INDEX_PREFIX = "x:"


def index_sk(name: str) -> str:
    """An index item of a user's client-named events, in the user's partition."""
    return f"{INDEX_PREFIX}{name}"


def index_name(writer: str, shard: str, seq: int) -> str:
    """What names an index item: what wrote it (a key, or ``profile``) and the record that did, so a
    retried batch rewrites the same item."""
    return f"{writer}{SEP}{shard}{SEP}{seq}"


REJECTION_SUFFIXES = 16


def rejections_pk(plugin_id: str, suffix: int | None) -> str:
    """One of a plugin's partitions of recorded rejections (``None``: the one partition they had
    before key suffixes, read until its records expire)."""
    base = f"{SEP}rejections{SEP}{plugin_id}"
    return base if suffix is None else f"{base}{SEP}{suffix:02d}"


def rejection_pk(plugin_id: str, sk: str) -> str:
    """A record's partition, from its sort key (its random token spreads a flood's records)."""
    return rejections_pk(plugin_id, spread(sk, REJECTION_SUFFIXES))


# Every partition a listing of a plugin's rejections reads.
REJECTION_PARTITIONS: tuple[int | None, ...] = (None, *range(REJECTION_SUFFIXES))


def rejection_sk(at: int, token: str) -> str:
    """Newest last by key: the time, then a random token (two records of the same millisecond)."""
    return f"{at:013d}{SEP}{token}"


def deletions_pk(plugin_id: str) -> str:
    return f"{SEP}deletions{SEP}{plugin_id}"


def deletion_prefix(deletion_id: str) -> str:
    """What every step of one deletion's sort key starts with."""
    return f"{deletion_id}{SEP}"


def deletion_sk(deletion_id: str, step: int) -> str:
    return f"{deletion_prefix(deletion_id)}{step:08d}"


# -- aggregates table ---------------------------------------------------------------------------------


USER_SUFFIXES = 512
ROLLUP_SUFFIXES = 128


def user_suffix(user_id: str) -> int:
    return spread(user_id, USER_SUFFIXES)


def rollup_suffix(shard: str) -> int:
    return spread(shard, ROLLUP_SUFFIXES)


def aggregates_pk(plugin_id: str, suffix: int) -> str:
    """One of a plugin's aggregates (and profiles) partitions."""
    return f"u{SEP}{plugin_id}{SEP}{suffix:03d}"


def aggregate_pk(plugin_id: str, user_id: str) -> str:
    """The partition of every aggregate of one id, and of its profile."""
    return aggregates_pk(plugin_id, user_suffix(user_id))


def is_aggregates_pk(pk: str) -> bool:
    """Whether a partition key is one of a plugin's aggregates' (and profiles') partitions."""
    return pk.startswith(f"u{SEP}")


def user_prefix(user_id: str) -> str:
    """What every sort key of one id's aggregates and profile starts with."""
    return f"{user_id}{SEP}"


def after_user(user_id: str) -> str:
    """The lowest sort key of the users after ``user_id``: every key of a user is ``user␟...`` and
    identifiers hold no control character, so the next user's all sort at or after ``user `` ."""
    return f"{user_id} "


def aggregate_sk(user_id: str, key: str) -> str:
    return f"{user_prefix(user_id)}{key}"


def profile_sk(user_id: str) -> str:
    """A profile sorts first among its id's items (no key starts with the separator)."""
    return f"{user_prefix(user_id)}{SEP}profile"


def profile_part_sk(user_id: str, part: int) -> str:
    """A part of a large profile (``storage.profile_items``): right after the profile's own item."""
    return f"{profile_sk(user_id)}{SEP}{part:02d}"


def funnel_pk(plugin_id: str, user_id: str) -> str:
    """A user's funnel item, apart from the aggregates (pages of rows never read them)."""
    return f"f{SEP}{plugin_id}{SEP}{user_suffix(user_id):03d}"


def rollups_pk(plugin_id: str, suffix: int) -> str:
    return f"r{SEP}{plugin_id}{SEP}{suffix:03d}"


def rollup_pk(plugin_id: str, shard: str) -> str:
    """The partition of one shard's rollups."""
    return rollups_pk(plugin_id, rollup_suffix(shard))


def day_rollups_pk(plugin_id: str) -> str:
    """A plugin's day rollups: what its shards' rollups of a day add up to, once folded."""
    return f"d{SEP}{plugin_id}"


def day_rollup_sk(day: str, key: str, group: str, reset_at: int) -> str:
    """Per reset too: what was counted before a key's reset is told apart from what came after."""
    return f"{day}{SEP}{key}{SEP}{group}{SEP}{reset_at:013d}"


def spread_pk_parts(pk: str) -> tuple[str, str, int] | None:
    """("users" or "rollups", plugin, suffix) of an aggregates or rollups partition key, else None."""
    kinds = {"u": "users", "r": "rollups"}
    parts = pk.split(SEP)
    if len(parts) == 3 and parts[0] in kinds and parts[2].isdigit():  # kind, plugin, suffix
        return kinds[parts[0]], parts[1], int(parts[2])
    return None


def suffixes_key(plugin_id: str) -> dict[str, str]:
    """The item that lists which of a plugin's suffixes hold items (``users``, ``rollups``)."""
    return {"pk": f"s{SEP}{plugin_id}", "sk": "suffixes"}


def rollup_sk(day: str, key: str, group: str, shard: str) -> str:
    return f"{day}{SEP}{key}{SEP}{group}{SEP}{shard}"


def days_range(first_day: str, last_day: str) -> tuple[str, str]:
    """The sort keys of every rollup of ``first_day``..``last_day``: "day␟key␟group␟shard" of the last
    day sorts before "day " and after every earlier day."""
    return first_day, f"{last_day} "


# Internal keys (never a client's: no key name starts with the separator): a funnel step's rollups,
# the A/B groups' users and converted users (by the day they joined their group, with their net
# revenue), and the refunds taken off revenue (by the day of the event that took them off).
FUNNEL_KEY_PREFIX = f"{SEP}funnel{SEP}"
AB_USERS_KEY = f"{SEP}ab{SEP}users"
AB_CONVERSIONS_KEY = f"{SEP}ab{SEP}conversions"
REFUNDS_KEY = f"{SEP}refunds"


def funnel_key(step: int) -> str:
    return f"{FUNNEL_KEY_PREFIX}{step}"


# The live view's items of one plugin sit under this many partition keys: in the scale simulation at
# 100k events/s a plugin's 200 shards write about 7,000 WCU/s of heads and rings (914 on the hottest of
# 8 keys: too near one partition's 1,000). A read queries each; a shard of a stack upgraded from 8 keeps
# its old item (read, and expired in a day) beside its new one.
LIVE_SUFFIXES = 16


def live_pk(plugin_id: str, shard: str) -> str:
    """Where a shard's ring of the plugin's latest events sits (sort key the shard's id)."""
    return f"l{SEP}{plugin_id}{SEP}{zlib.crc32(shard.encode()) % LIVE_SUFFIXES}"


def live_head_sk(shard: str) -> str:
    """The sort key of a shard's head: its newest events, written each batch (the ring's sort key is
    the shard's id)."""
    return f"{shard}{SEP}h"


def live_pks(plugin_id: str) -> list[str]:
    """Every partition key of the plugin's live view (a read queries each)."""
    return [f"l{SEP}{plugin_id}{SEP}{n}" for n in range(LIVE_SUFFIXES)]


def is_internal_key(key: str) -> bool:
    return key.startswith(SEP)


# -- control table ------------------------------------------------------------------------------------


def config_pk(plugin_id: str) -> str:
    return f"plugin{SEP}{plugin_id}"


CONFIG_SK = "config"
PEOPLE_SK = "people"
STAMP_SK = "stamp"  # a counter every write of the config or the people lists adds one to


def suppression_key(plugin_id: str, digest: str) -> dict[str, str]:
    """One suppressed id's item (its digest): a key of its own, read alone when the plugin's
    suppression filter flags the digest."""
    return {"pk": f"z{SEP}{plugin_id}{SEP}{digest}", "sk": "suppressed"}


def write_key_pk(write_key: str) -> str:
    return f"writekey{SEP}{write_key}"


def rate_pk(client: str) -> str:
    """A rate-limit window: of a client IP, or of a key's daily quota (``quota_name``)."""
    return f"ratelimit{SEP}{client}"


def salt_pk(day: str) -> str:
    """The day's secret salt of the per-IP rate limit's pseudonyms (``ingest/privacy.py``)."""
    return f"salt{SEP}{day}"


def quota_name(key_name: str) -> str:
    """Whom a key's daily quota is kept for (never an IP: no IP holds the separator)."""
    return f"key{SEP}{key_name}"


def write_key_budget(write_key: str) -> str:
    """Whom a write key's rate budget is kept for: a digest (a budget item never holds the key)."""
    return f"source{SEP}{hashlib.sha256(write_key.encode()).hexdigest()[:32]}"


def api_key_pk(key_hash: str) -> str:
    return f"apikey{SEP}{key_hash}"


def keys_pk(plugin_id: str) -> str:
    """A plugin's keys, listed (hash, label, last 4 characters, times), one item per key."""
    return f"keys{SEP}{plugin_id}"


# Every plugin with a config or a dashboard key, under one partition key: listing them is one query.
PLUGIN_INDEX_PK = "plugins"
# How many plugins without a config are listed (see ControlStore.register_plugin).
UNCONFIGURED_COUNT = {"pk": f"{PLUGIN_INDEX_PK}{SEP}count", "sk": "unconfigured"}


def destinations_pk(plugin_id: str) -> str:
    """A plugin's destinations (one item each, sort key its id): one query reads them all, with the
    plugin's settings they follow (``DESTINATION_SETTINGS_SK``)."""
    return f"destinations{SEP}{plugin_id}"


# Beside a plugin's destinations: what of its published config they follow (its ``bots``), written
# with the config. No destination id holds the separator, so none is this.
DESTINATION_SETTINGS_SK = f"{SEP}settings"


# -- deliveries table -----------------------------------------------------------------------------------
# Failures and counters of one destination are spread over this many partition keys: a destination
# failing at the rate one plugin stores events writes no partition past its share.
DELIVERY_SUFFIXES = 16


def delivery_marker_key(plugin_id: str, destination_id: str, message_id: str) -> dict[str, str]:
    """A message's delivery to a destination: being sent (a lease), or delivered (never sent again)."""
    return {"pk": f"m{SEP}{plugin_id}{SEP}{destination_id}{SEP}{message_id}", "sk": "-"}


def failures_pk(plugin_id: str, destination_id: str, suffix: int) -> str:
    """A destination's messages that were not delivered, sort key their message id."""
    return f"f{SEP}{plugin_id}{SEP}{destination_id}{SEP}{suffix:02d}"


def delivery_stats_key(plugin_id: str, destination_id: str, suffix: int) -> dict[str, str]:
    """One of a destination's counters (delivered, failed, pending), summed at read."""
    return {"pk": f"s{SEP}{plugin_id}{SEP}{destination_id}{SEP}{suffix:02d}", "sk": "-"}


def forgotten_key(plugin_id: str, user_id: str) -> dict[str, str]:
    """An id of a forgotten person: none of its events stored before ``at`` is delivered any more."""
    return {"pk": f"x{SEP}{plugin_id}{SEP}{user_id}", "sk": "-"}


def replay_key(plugin_id: str, destination_id: str, replay_id: str) -> dict[str, str]:
    """A replay of a destination: its range, how far its listing got, and its counters."""
    return {"pk": f"r{SEP}{plugin_id}{SEP}{destination_id}", "sk": replay_id}


def replay_marker(message_id: str, replay_id: str) -> str:
    """A replayed message's marker id: a replay sends again what was delivered, once per replay."""
    return f"{message_id}{SEP}replay{SEP}{replay_id}"
