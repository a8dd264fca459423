"""Sends through Segment's own Python SDK (segment-analytics-python), as an
app would, pointed at a kairos collector: python3 send_python.py HOST
WRITE_KEY USER_PREFIX USERS. Exits 1 if the SDK reported any error."""

import sys

import segment.analytics as analytics

host, write_key, prefix, users = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
errors = []
analytics.write_key = write_key
analytics.host = host
analytics.gzip = True
analytics.max_retries = 3
analytics.on_error = lambda error, batch: errors.append(repr(error))

for n in range(users):
    user = f"{prefix}{n}"
    cart = f"cart-{user}"
    analytics.identify(user, {"email": f"{user}@example.com"})
    analytics.track(user, "Signed Up", {"plan": "free"})
    # Bought at once: no cart reminder for Python's shoppers.
    analytics.track(user, "Product Added", {"cart_id": cart, "product_id": "sku-1", "price": 9.5})
    analytics.track(user, "Order Completed", {"cart_id": cart, "order_id": f"o-{user}", "revenue": 9.5})

analytics.flush()
analytics.shutdown()
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
