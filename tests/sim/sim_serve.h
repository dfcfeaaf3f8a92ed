/*
 * sim_serve: `vouch-sim serve`. The main thread follows the push log (sim_tail.h), maps each
 * pushed token to one of DIR's devices and queues it; K workers (sim_workers.h) take devices
 * from that mutex-protected queue and run one Idle session each, exactly as connect does. A
 * device is in at most one session at a time: a push during its session asks for one more,
 * further pushes before that one starts are folded into it. DIR/tokens.tsv is read again when it
 * changed. Stops on --idle-exit, --max-seconds, --expect-pushes, SIGINT or SIGTERM, then prints
 * the summary (with the push counts of struct sim_stats_serve).
 */
#ifndef VOUCH_SIM_SERVE_H
#define VOUCH_SIM_SERVE_H

#include "sim_options.h"

/* Runs serve to its end; returns the exit status. */
int sim_serve_command(const struct sim_options *opt);

#endif
