<?php

declare(strict_types=1);

// No templates: every response is JSON or text. Compiled views would go to storage/ (an emptyDir).
return [
    'paths' => [resource_path('views')],
    'compiled' => storage_path('framework/views'),
];
