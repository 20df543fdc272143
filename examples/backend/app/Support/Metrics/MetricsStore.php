<?php

declare(strict_types=1);

namespace App\Support\Metrics;

/** Integer counters shared by every PHP-FPM worker of a pod. */
interface MetricsStore
{
    /** Adds $by to the counter $key (created at 0). */
    public function increment(string $key, int $by = 1): void;

    /** Adds several counters at once (one lock or round trip where the store needs one). */
    public function incrementMany(array $deltas): void;

    /** @return array<string, int> every counter, by key */
    public function all(): array;

    /** A short name for the store, exported as a label of threetier_metrics_store_info. */
    public function name(): string;
}
