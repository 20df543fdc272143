<?php

declare(strict_types=1);

namespace App\Support\Metrics;

use RuntimeException;

/**
 * Counters in a JSON file under storage/ (an emptyDir per pod), updated under an exclusive flock(): correct
 * across PHP-FPM workers and processes, at the cost of a file lock per request. Used where APCu is missing.
 */
final class FileStore implements MetricsStore
{
    public function __construct(private readonly string $path)
    {
    }

    public function increment(string $key, int $by = 1): void
    {
        $this->incrementMany([$key => $by]);
    }

    public function incrementMany(array $deltas): void
    {
        $this->withLock(LOCK_EX, function ($handle) use ($deltas): void {
            $counters = $this->read($handle);
            foreach ($deltas as $key => $by) {
                $counters[(string) $key] = ($counters[(string) $key] ?? 0) + (int) $by;
            }
            ftruncate($handle, 0);
            rewind($handle);
            fwrite($handle, json_encode($counters, JSON_THROW_ON_ERROR));
            fflush($handle);
        });
    }

    public function all(): array
    {
        if (! is_file($this->path)) {
            return [];
        }
        $result = [];
        $this->withLock(LOCK_SH, function ($handle) use (&$result): void {
            $result = $this->read($handle);
        });

        return $result;
    }

    public function name(): string
    {
        return 'file';
    }

    /** @param resource $handle */
    private function read($handle): array
    {
        rewind($handle);
        $raw = stream_get_contents($handle);
        if ($raw === false || $raw === '') {
            return [];
        }
        $decoded = json_decode($raw, true);

        return is_array($decoded) ? array_map('intval', $decoded) : [];
    }

    private function withLock(int $mode, callable $fn): void
    {
        $dir = dirname($this->path);
        if (! is_dir($dir) && ! @mkdir($dir, 0775, true) && ! is_dir($dir)) {
            throw new RuntimeException("cannot create {$dir}");
        }
        $handle = fopen($this->path, 'c+');
        if ($handle === false) {
            throw new RuntimeException("cannot open {$this->path}");
        }
        try {
            flock($handle, $mode);
            $fn($handle);
        } finally {
            flock($handle, LOCK_UN);
            fclose($handle);
        }
    }
}
