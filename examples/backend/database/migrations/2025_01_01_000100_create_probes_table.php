<?php

declare(strict_types=1);

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

// Rows written by GET /api/db (the e2e tier's database round trip), kept apart from the messages.
return new class extends Migration
{
    public function up(): void
    {
        Schema::create('probes', function (Blueprint $table): void {
            $table->id();
            $table->string('host', 255);
            $table->timestampTz('created_at')->useCurrent();
        });
    }

    public function down(): void
    {
        Schema::dropIfExists('probes');
    }
};
