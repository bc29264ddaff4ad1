<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/**
 * One JSON file per shop in a directory only this user can read (the
 * answer holds the token), written whole under an exclusive `flock` on a
 * lock file beside it, so a reader never sees half a file.
 */
final class FileTokenCache implements TokenCache
{
    public function __construct(private readonly string $directory)
    {
        if (!is_dir($directory) && !@mkdir($directory, 0700, true) && !is_dir($directory)) {
            throw new \RuntimeException("cannot create the token cache directory {$directory}");
        }
    }

    public function read(string $key): ?array
    {
        $text = @file_get_contents($this->path($key));
        $answer = $text === false ? null : json_decode($text, true);

        return is_array($answer) ? $answer : null;
    }

    public function write(string $key, array $answer): void
    {
        // Renamed into place: atomic, so a lock-free read sees the old or the new file.
        $temporary = tempnam($this->directory, 'tmp');
        if ($temporary === false) {
            throw new \RuntimeException('cannot write to the token cache');
        }
        chmod($temporary, 0600);
        file_put_contents($temporary, json_encode($answer, JSON_THROW_ON_ERROR));
        rename($temporary, $this->path($key));
    }

    public function locked(string $key, callable $critical): mixed
    {
        $lock = fopen($this->path($key) . '.lock', 'c');
        if ($lock === false || !flock($lock, LOCK_EX)) {
            throw new \RuntimeException('cannot lock the token cache');
        }
        try {
            return $critical();
        } finally {
            flock($lock, LOCK_UN);
            fclose($lock);
        }
    }

    private function path(string $key): string
    {
        return $this->directory . '/' . hash('sha256', $key) . '.json';
    }
}
