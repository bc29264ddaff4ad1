<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/** One HTTP request with curl; never follows a redirect. */
final class Http
{
    /**
     * @param array<string, string> $headers
     * @return array{int, array<string, string>, string} status, headers (names lowercase), body
     */
    public static function send(string $method, string $url, array $headers, ?string $body, int $timeoutSeconds): array
    {
        $received = [];
        $curl = curl_init($url);
        curl_setopt_array($curl, [
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_RETURNTRANSFER => true,
            // A redirect would carry the token header to whatever host it names.
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTPS | CURLPROTO_HTTP,
            CURLOPT_CONNECTTIMEOUT => 5,
            CURLOPT_TIMEOUT => $timeoutSeconds,
            CURLOPT_HTTPHEADER => array_map(
                static fn (string $name, string $value): string => "{$name}: {$value}",
                array_keys($headers),
                $headers,
            ),
            CURLOPT_HEADERFUNCTION => static function ($curl, string $line) use (&$received): int {
                $parts = explode(':', $line, 2);
                if (count($parts) === 2) {
                    $received[strtolower(trim($parts[0]))] = trim($parts[1]);
                }

                return strlen($line);
            },
        ]);
        if ($body !== null) {
            curl_setopt($curl, CURLOPT_POSTFIELDS, $body);
        }
        $answer = curl_exec($curl);
        if ($answer === false) {
            // curl's message names the host, never a header: no token in it.
            $error = curl_error($curl);
            curl_close($curl);
            throw new \RuntimeException("{$method} " . parse_url($url, PHP_URL_PATH) . ": {$error}");
        }
        $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
        curl_close($curl);

        return [$status, $received, (string) $answer];
    }
}
