<?php

declare(strict_types=1);

namespace App\Support\Metrics;

/**
 * Request counter and latency histogram on top of a MetricsStore, and their Prometheus text exposition.
 * Keys are tab-separated label values; durations are summed in microseconds (the stores count integers).
 */
final class RequestMetrics
{
    /** @param list<float> $buckets upper bounds in seconds, ascending */
    public function __construct(private readonly MetricsStore $store, private readonly array $buckets)
    {
    }

    public function store(): MetricsStore
    {
        return $this->store;
    }

    public function record(string $method, string $route, int $status, float $seconds): void
    {
        $deltas = [
            "req\t{$method}\t{$route}\t{$status}" => 1,
            "dur_count\t{$route}" => 1,
            "dur_sum_us\t{$route}" => (int) round($seconds * 1e6),
        ];
        foreach ($this->buckets as $le) {
            if ($seconds <= $le) {
                // Cumulative buckets are computed at render time; store one bucket per observation.
                $deltas["dur_bucket\t{$route}\t".self::formatFloat($le)] = 1;
                break;
            }
        }
        $this->store->incrementMany($deltas);
    }

    /** @return list<string> exposition lines (without a trailing newline) */
    public function render(): array
    {
        $requests = [];
        $counts = [];
        $sums = [];
        $buckets = [];
        foreach ($this->store->all() as $key => $value) {
            $parts = explode("\t", (string) $key);
            switch ($parts[0]) {
                case 'req':
                    if (count($parts) === 4) {
                        $requests[] = [['method' => $parts[1], 'route' => $parts[2], 'status' => $parts[3]], $value];
                    }
                    break;
                case 'dur_count':
                    $counts[$parts[1] ?? ''] = $value;
                    break;
                case 'dur_sum_us':
                    $sums[$parts[1] ?? ''] = $value;
                    break;
                case 'dur_bucket':
                    if (count($parts) === 3) {
                        $buckets[$parts[1]][$parts[2]] = $value;
                    }
                    break;
            }
        }

        $lines = [
            '# HELP threetier_http_requests_total HTTP requests handled by Laravel, by method, route pattern and status.',
            '# TYPE threetier_http_requests_total counter',
        ];
        usort($requests, static fn (array $a, array $b): int => [$a[0]['route'], $a[0]['method'], $a[0]['status']] <=> [$b[0]['route'], $b[0]['method'], $b[0]['status']]);
        foreach ($requests as [$labels, $value]) {
            $lines[] = 'threetier_http_requests_total'.Exposition::labels($labels).' '.$value;
        }

        $lines[] = '# HELP threetier_http_request_duration_seconds Time Laravel spent on a request, by route pattern.';
        $lines[] = '# TYPE threetier_http_request_duration_seconds histogram';
        ksort($counts);
        foreach ($counts as $route => $count) {
            $cumulative = 0;
            foreach ($this->buckets as $le) {
                $cumulative += $buckets[$route][self::formatFloat($le)] ?? 0;
                $lines[] = 'threetier_http_request_duration_seconds_bucket'
                    .Exposition::labels(['route' => (string) $route, 'le' => self::formatFloat($le)]).' '.$cumulative;
            }
            $lines[] = 'threetier_http_request_duration_seconds_bucket'.Exposition::labels(['route' => (string) $route, 'le' => '+Inf']).' '.$count;
            $lines[] = 'threetier_http_request_duration_seconds_sum'.Exposition::labels(['route' => (string) $route]).' '
                .self::formatFloat(($sums[$route] ?? 0) / 1e6);
            $lines[] = 'threetier_http_request_duration_seconds_count'.Exposition::labels(['route' => (string) $route]).' '.$count;
        }

        return $lines;
    }

    private static function formatFloat(float $value): string
    {
        $text = rtrim(rtrim(sprintf('%.6F', $value), '0'), '.');

        return $text === '' || $text === '-0' ? '0' : $text;
    }
}
