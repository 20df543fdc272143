<?php

declare(strict_types=1);

namespace App\Support\Metrics;

/** Helpers for the Prometheus text format (version 0.0.4). */
final class Exposition
{
    public const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

    /** @param array<string, string> $labels */
    public static function labels(array $labels): string
    {
        if ($labels === []) {
            return '';
        }
        $parts = [];
        foreach ($labels as $name => $value) {
            $parts[] = $name.'="'.str_replace(['\\', '"', "\n"], ['\\\\', '\\"', '\\n'], $value).'"';
        }

        return '{'.implode(',', $parts).'}';
    }
}
