// Sends every Segment-spec call type through @segment/analytics-node, as its users would, then
// flushes and exits. Run by tests/e2e/test_real_clients.py: node send_node.mjs URL WRITE_KEY PREFIX
import { createRequire } from 'node:module'

const require = createRequire(process.env.DEVSTACK_MODULES + '/')
const { Analytics } = require('@segment/analytics-node')

const [url, writeKey, prefix] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host: url, flushAt: 20, maxRetries: 1 })
const errors = []
analytics.on('error', (error) => errors.push(String(error.reason ?? error.code ?? error)))
const user = `${prefix}-user`
const anonymous = `${prefix}-anon`
analytics.identify({ anonymousId: anonymous, traits: { plan: 'free' }, messageId: `${prefix}-i0` })
analytics.track({ anonymousId: anonymous, event: 'Signed Up', properties: { value: 'trial' }, messageId: `${prefix}-t0` })
analytics.identify({ userId: user, anonymousId: anonymous, traits: { plan: 'pro', email: `${prefix}@example.com` }, messageId: `${prefix}-i1` })
analytics.track({ userId: user, event: 'Signed Up', properties: { value: 'paid' }, messageId: `${prefix}-t1` })
analytics.track({ userId: user, event: 'Signed Up', properties: { value: 'paid' } })
analytics.page({ userId: user, category: 'Docs', name: 'Getting started', properties: { path: '/docs' }, messageId: `${prefix}-p1` })
analytics.screen({ userId: user, category: 'App', name: 'Settings', properties: { tab: 'billing' }, messageId: `${prefix}-s1` })
analytics.group({ userId: user, groupId: 'acme', traits: { name: 'Acme Inc' }, messageId: `${prefix}-g1` })
analytics.alias({ previousId: anonymous, userId: user, messageId: `${prefix}-a1` })
for (let n = 0; n < 9; n++) {
  analytics.track({ userId: user, event: 'Batched', properties: { value: n }, messageId: `${prefix}-b${n}` })
}
analytics.track({ userId: user, event: 'x'.repeat(300), properties: {}, messageId: `${prefix}-bad` })
analytics.track({ userId: user, event: 'Paid', properties: { amount: 1e200 }, messageId: `${prefix}-huge` }) // 1e+200
await analytics.closeAndFlush({ timeout: 20000 })
console.log(JSON.stringify({ errors }))
