/*
 * dashboard_assets: the files of server/dashboard/assets/, built into vouchd
 * (embed_assets.py writes the table at build time). Read-only, for the life of the process.
 */
#ifndef VOUCH_DASHBOARD_ASSETS_H
#define VOUCH_DASHBOARD_ASSETS_H

#include <stddef.h>

struct dashboard_asset {
    const char *name; /* the file name: "index.html", "app.js", ... */
    const char *data; /* its bytes (size of them; the text may hold NUL) */
    size_t size;
};

extern const struct dashboard_asset dashboard_assets[];
extern const size_t dashboard_asset_count;

#endif
