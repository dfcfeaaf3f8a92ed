"use strict";
// Vouch dashboard (skeleton; the full page follows).
