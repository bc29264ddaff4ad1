// Verify a lifecycle event delivered by shop-token-broker to an HTTPS endpoint.
// Node 18+, no dependencies. Copy verifyDelivery into your receiver and call it
// with the raw request body (a Buffer, exactly as received) before parsing the
// JSON. See docs/events.md.
'use strict';
const crypto = require('crypto');

const TOLERANCE_SECONDS = 300; // 5 minutes, both directions

// Throws an Error if the delivery is forged or a replay; returns otherwise.
// secret: the signing secret text (Secrets Manager, output EventWebhookSecretArn).
// id, timestamp, signature: the headers webhook-id, webhook-timestamp, webhook-signature.
function verifyDelivery(secret, id, timestamp, signature, body, now = Math.floor(Date.now() / 1000)) {
  if (!/^[0-9]{1,15}$/.test(timestamp || '')) throw new Error('invalid webhook-timestamp');
  if (Math.abs(now - Number(timestamp)) > TOLERANCE_SECONDS) {
    throw new Error('timestamp outside the 5-minute window');
  }
  const expected = crypto
    .createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(Buffer.from(`${id}.${timestamp}.`, 'utf8'))
    .update(body)
    .digest();
  const expectedText = Buffer.from(expected.toString('base64'), 'utf8');
  for (const candidate of (signature || '').split(' ')) {
    const comma = candidate.indexOf(',');
    if (comma < 0 || candidate.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(candidate.slice(comma + 1), 'utf8');
    if (given.length === expectedText.length && crypto.timingSafeEqual(given, expectedText)) return;
  }
  throw new Error('no matching signature');
}

module.exports = { verifyDelivery };

if (require.main === module) {
  // Test wrapper: secret and headers from the environment, body from stdin.
  const body = require('fs').readFileSync(0);
  const env = process.env;
  const id = env.WEBHOOK_ID || '';
  try {
    const now = env.NOW ? Number(env.NOW) : undefined;
    verifyDelivery(env.EVENTS_SECRET || '', id, env.WEBHOOK_TIMESTAMP || '', env.WEBHOOK_SIGNATURE || '', body, now);
  } catch (error) {
    console.log(`forged: ${error.message}`);
    process.exit(1);
  }
  console.log(`genuine ${id}`);
}
