<?php

declare(strict_types=1);

namespace Database\Seeders;

use App\Models\Message;
use Illuminate\Database\Seeder;

/**
 * Demo data for dev and local installs. The chart runs the seed hook after every install and upgrade, so
 * seeding is idempotent: existing rows are left alone.
 */
class DatabaseSeeder extends Seeder
{
    /** @var list<array{author: string, body: string}> */
    private const MESSAGES = [
        ['author' => 'threetier', 'body' => 'Welcome! This message was written by the seed hook Job.'],
        ['author' => 'threetier', 'body' => 'Post a message below: it goes through nginx and PHP-FPM into PostgreSQL.'],
    ];

    public function run(): void
    {
        foreach (self::MESSAGES as $message) {
            Message::query()->firstOrCreate($message);
        }
    }
}
