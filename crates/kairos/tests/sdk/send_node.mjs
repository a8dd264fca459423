// Sends through Segment's own Node SDK (@segment/analytics-node), as a
// service would, pointed at a kairos collector:
// node send_node.mjs HOST WRITE_KEY USER_PREFIX USERS. Exits 1 if the SDK
// reported any error.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, prefix, users] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, maxEventsInBatch: 10, flushInterval: 200 })
const errors = []
analytics.on('error', (error) => errors.push(String(error?.reason ?? error?.code ?? error)))

for (let n = 0; n < Number(users); n++) {
  const userId = `${prefix}${n}`
  analytics.identify({ userId, traits: { email: `${userId}@example.com` } })
  analytics.track({ userId, event: 'Signed Up', properties: { plan: 'free' } })
  // Left in the cart: each Node shopper gets a reminder.
  analytics.track({
    userId,
    event: 'Product Added',
    properties: { cart_id: `cart-${userId}`, product_id: 'sku-2', price: 4.25 },
  })
}

await analytics.closeAndFlush({ timeout: 20000 })
if (errors.length > 0) {
  console.error(errors.join('\n'))
  process.exit(1)
}
