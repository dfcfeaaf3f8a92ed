/*
 * sim_stats: see sim_stats.h.
 */
#include "sim_stats.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *const attest_count_names[SIM_STATS_ATTEST_N] = {
    [SIM_STATS_ATTEST_GENERATED] = "generated", [SIM_STATS_ATTEST_CACHED] = "cached",
    [SIM_STATS_ATTEST_TAMPERED] = "tampered",   [SIM_STATS_ATTEST_UNSUPPORTED] = "unsupported",
    [SIM_STATS_ATTEST_BAD_NONCE] = "bad_nonce",
};

const char *sim_stats_attest_name(enum sim_stats_attest which)
{
    return attest_count_names[which];
}

void sim_stats_count_type(struct sim_stats *s, const char *type, unsigned long count)
{
    for (size_t i = 0; i < s->ntypes; i++) {
        if (strcmp(s->types[i].name, type) == 0) {
            s->types[i].count += count;
            return;
        }
    }
    if (s->ntypes == SIM_STATS_MAX_TYPES) {
        s->other_types += count;
        return;
    }
    snprintf(s->types[s->ntypes].name, sizeof(s->types[s->ntypes].name), "%s", type);
    s->types[s->ntypes].count = count;
    s->ntypes++;
}

void sim_stats_merge(struct sim_stats *into, const struct sim_stats *from)
{
    for (size_t i = 0; i < SIM_STATS_LATENCY_BUCKETS; i++)
        into->latency[i] += from->latency[i];
    into->requests += from->requests;
    into->new_connections += from->new_connections;
    into->http_errors += from->http_errors;
    into->transport_errors += from->transport_errors;
    into->protocol_errors += from->protocol_errors;
    into->local_errors += from->local_errors;
    into->enrolled += from->enrolled;
    into->checked_out += from->checked_out;
    into->sessions += from->sessions;
    into->failed_devices += from->failed_devices;
    into->expected_hits += from->expected_hits;
    into->other_types += from->other_types;
    into->acme.requests += from->acme.requests;
    into->acme.certificates += from->acme.certificates;
    into->acme.refused_reused_id += from->acme.refused_reused_id;
    into->acme.refused_csr_key += from->acme.refused_csr_key;
    into->acme.not_refused += from->acme.not_refused;
    into->acme.local_identities += from->acme.local_identities;
    for (int i = 0; i < SIM_ANSWER_COUNT; i++)
        into->answers[i] += from->answers[i];
    for (int i = 0; i < SIM_STATS_ATTEST_N; i++)
        into->attest[i] += from->attest[i];
    for (size_t i = 0; i < from->ntypes; i++)
        sim_stats_count_type(into, from->types[i].name, from->types[i].count);
    for (size_t i = 0; i < sizeof(into->status) / sizeof(into->status[0]); i++)
        into->status[i] += from->status[i];
}

void sim_stats_add_latency(struct sim_stats *s, long long us)
{
    size_t bucket = us < 0 ? 0 : (size_t)(us / SIM_STATS_LATENCY_STEP_US);

    s->latency[bucket < SIM_STATS_LATENCY_BUCKETS ? bucket : SIM_STATS_LATENCY_BUCKETS - 1]++;
}

void sim_stats_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static int compare_types(const void *a, const void *b)
{
    const struct sim_stats_type *x = a;
    const struct sim_stats_type *y = b;

    return strcmp(x->name, y->name);
}

double sim_stats_cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void sim_stats_print_summary(const struct sim_options *opt, size_t ndevices, unsigned long created,
                             struct sim_stats *s, const struct sim_stats_serve *serve,
                             double prepare, double elapsed, double prepare_cpu)
{
    bool first = true;

    qsort(s->types, s->ntypes, sizeof(s->types[0]), compare_types);
    printf("{\"mode\":");
    sim_stats_json_string(stdout, sim_mode_name(opt->mode));
    printf(",\"devices\":%zu,\"identities_created\":%lu,\"enrolled\":%lu,\"checked_out\":%lu,"
           "\"sessions\":%lu,\"requests\":%lu,\"connections\":%lu,\"http_errors\":%lu,"
           "\"transport_errors\":%lu,\"protocol_errors\":%lu,\"local_errors\":%lu,"
           "\"failed_devices\":%lu,",
           ndevices, created, s->enrolled, s->checked_out, s->sessions, s->requests,
           s->new_connections, s->http_errors, s->transport_errors, s->protocol_errors,
           s->local_errors, s->failed_devices);
    if (opt->expect_status != 0)
        printf("\"expected_status\":%ld,", opt->expect_status);
    else
        printf("\"expected_status\":null,");
    printf("\"expected_hits\":%lu,\"statuses\":{", s->expected_hits);
    for (size_t i = 0; i < sizeof(s->status) / sizeof(s->status[0]); i++) {
        if (s->status[i] == 0)
            continue;
        printf("%s\"%zu\":%lu", first ? "" : ",", i, s->status[i]);
        first = false;
    }
    printf("},\"commands\":{");
    for (size_t i = 0; i < s->ntypes; i++) {
        if (i > 0)
            putchar(',');
        sim_stats_json_string(stdout, s->types[i].name);
        printf(":%lu", s->types[i].count);
    }
    if (s->other_types > 0)
        printf("%s\"(other)\":%lu", s->ntypes > 0 ? "," : "", s->other_types);
    printf("},\"answers\":{");
    for (int i = 0; i < SIM_ANSWER_COUNT; i++) {
        printf("%s", i > 0 ? "," : "");
        sim_stats_json_string(stdout, sim_device_answer_status((enum sim_answer)i));
        printf(":%lu", s->answers[i]);
    }
    printf("},\"attestations\":{");
    for (int i = 0; i < SIM_STATS_ATTEST_N; i++) {
        printf("%s", i > 0 ? "," : "");
        sim_stats_json_string(stdout, attest_count_names[i]);
        printf(":%lu", s->attest[i]);
    }
    printf("}");
    if (opt->identity == SIM_IDENTITY_ACME) {
        printf(",\"acme\":{\"requests\":%lu,\"certificates\":%lu,\"refused\":{"
               "\"client_identifier_used\":%lu,\"csr_key_mismatch\":%lu},\"not_refused\":%lu,"
               "\"local_identities\":%lu}",
               s->acme.requests, s->acme.certificates, s->acme.refused_reused_id,
               s->acme.refused_csr_key, s->acme.not_refused, s->acme.local_identities);
    }
    if (serve != NULL) {
        printf(",\"pushes_seen\":%lu,\"pushes_unknown_token\":%lu,\"pushes_bad_magic\":%lu,"
               "\"pushes_malformed\":%lu,\"pushes_handled\":%lu,\"pushes_coalesced\":%lu,"
               "\"sessions_dropped\":%lu,\"devices_with_tokens\":%zu,",
               serve->pushes_seen, serve->pushes_unknown, serve->pushes_bad_magic,
               serve->pushes_malformed, serve->pushes_handled, serve->pushes_coalesced,
               serve->sessions_dropped, serve->devices_with_tokens);
        if (opt->expect_pushes_set)
            printf("\"expected_pushes\":%lu,", opt->expect_pushes);
        else
            printf("\"expected_pushes\":null,");
        printf("\"stopped_by\":");
        sim_stats_json_string(stdout, serve->stopped_by);
    }
    unsigned long timed = 0, seen = 0;
    for (size_t i = 0; i < SIM_STATS_LATENCY_BUCKETS; i++)
        timed += s->latency[i];
    if (timed > 0) {
        /* The upper edge of the bucket holding the quantile (the last bucket: "at least"). */
        const double quantiles[] = {0.5, 0.99};
        double edge_ms[2] = {0, 0};
        size_t q = 0;
        for (size_t i = 0; i < SIM_STATS_LATENCY_BUCKETS && q < 2; i++) {
            seen += s->latency[i];
            while (q < 2 && (double)seen >= quantiles[q] * (double)timed)
                edge_ms[q++] = (double)((i + 1) * SIM_STATS_LATENCY_STEP_US) / 1000.0;
        }
        printf(",\"latency_ms\":{\"p50\":%.2f,\"p99\":%.2f}", edge_ms[0], edge_ms[1]);
    }
    printf(",\"prepare_s\":%.3f,\"elapsed_s\":%.3f,\"prepare_cpu_s\":%.3f,\"cpu_s\":%.3f}\n",
           prepare, elapsed, prepare_cpu, sim_stats_cpu_seconds());
    fflush(stdout);
}
