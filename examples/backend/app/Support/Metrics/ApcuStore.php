<?php

declare(strict_types=1);

namespace App\Support\Metrics;

use APCUIterator;

/**
 * Counters in APCu. PHP-FPM creates APCu's shared memory in the master before it forks the workers, so all
 * workers of the pod increment the same atomic counters; they start from zero when the container starts,
 * which Prometheus' rate() handles as a counter reset.
 */
final class ApcuStore implements MetricsStore
{
    public function __construct(private readonly string $prefix)
    {
    }

    public static function available(): bool
    {
        return function_exists('apcu_enabled') && apcu_enabled();
    }

    public function increment(string $key, int $by = 1): void
    {
        $full = $this->prefix.$key;
        $ok = false;
        apcu_inc($full, $by, $ok);
        // First use: apcu_add is atomic, so of two workers racing to create the key one adds, the other
        // increments what the first one added.
        if (! $ok && ! apcu_add($full, $by)) {
            apcu_inc($full, $by);
        }
    }

    public function incrementMany(array $deltas): void
    {
        foreach ($deltas as $key => $by) {
            $this->increment((string) $key, (int) $by);
        }
    }

    public function all(): array
    {
        $out = [];
        $length = strlen($this->prefix);
        foreach (new APCUIterator('/^'.preg_quote($this->prefix, '/').'/', APC_ITER_KEY | APC_ITER_VALUE) as $entry) {
            $out[substr((string) $entry['key'], $length)] = (int) $entry['value'];
        }

        return $out;
    }

    public function name(): string
    {
        return 'apcu';
    }
}
