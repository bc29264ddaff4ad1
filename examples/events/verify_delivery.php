<?php
// Verify a lifecycle event delivered by shop-token-broker to an HTTPS endpoint.
// PHP 8, no dependencies. Copy verify_delivery() into your receiver and call it
// with the raw request body (file_get_contents('php://input')) before parsing
// the JSON. See docs/events.md.

declare(strict_types=1);

const EVENTS_TOLERANCE_SECONDS = 300; // 5 minutes, both directions

/**
 * Throws an UnexpectedValueException if the delivery is forged or a replay.
 * $secret: the signing secret text (Secrets Manager, output EventWebhookSecretArn).
 * $id, $timestamp, $signature: the headers webhook-id, webhook-timestamp, webhook-signature
 * (e.g. $_SERVER['HTTP_WEBHOOK_ID'], $_SERVER['HTTP_WEBHOOK_TIMESTAMP'], $_SERVER['HTTP_WEBHOOK_SIGNATURE']).
 */
function verify_delivery(string $secret, string $id, string $timestamp, string $signature,
                         string $body, ?int $now = null): void
{
    if (preg_match('/^[0-9]{1,15}$/D', $timestamp) !== 1) {
        throw new UnexpectedValueException('invalid webhook-timestamp');
    }
    $now ??= time();
    if (abs($now - (int) $timestamp) > EVENTS_TOLERANCE_SECONDS) {
        throw new UnexpectedValueException('timestamp outside the 5-minute window');
    }
    $expected = base64_encode(hash_hmac('sha256', "{$id}.{$timestamp}.{$body}", $secret, true));
    foreach (explode(' ', $signature) as $candidate) {
        $parts = explode(',', $candidate, 2);
        if (count($parts) === 2 && $parts[0] === 'v1' && hash_equals($expected, $parts[1])) {
            return;
        }
    }
    throw new UnexpectedValueException('no matching signature');
}

if (PHP_SAPI === 'cli' && realpath($_SERVER['SCRIPT_FILENAME'] ?? '') === __FILE__) {
    // Test wrapper: secret and headers from the environment, body from stdin.
    $body = (string) file_get_contents('php://stdin');
    $id = (string) getenv('WEBHOOK_ID');
    $now = getenv('NOW') !== false && getenv('NOW') !== '' ? (int) getenv('NOW') : null;
    try {
        verify_delivery((string) getenv('EVENTS_SECRET'), $id, (string) getenv('WEBHOOK_TIMESTAMP'),
            (string) getenv('WEBHOOK_SIGNATURE'), $body, $now);
    } catch (UnexpectedValueException $error) {
        echo 'forged: ', $error->getMessage(), "\n";
        exit(1);
    }
    echo "genuine {$id}\n";
}
