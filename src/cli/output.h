/* Shared pieces of the query commands: loading a plan with a clear error,
 * and the JSON shape of one assignment (used by who, show and diff). */
#ifndef SU_CLI_OUTPUT_H
#define SU_CLI_OUTPUT_H

#include <jansson.h>

#include "lib/plan.h"

/* Loads or prints "softunicast CMD: PATH:LINE: reason" and returns NULL.
 * A URL (file://, etcd://) is read through the store. */
struct su_plan *cli_load_plan(const char *cmd, const char *path);

json_t *cli_tags_json(const struct su_tags *t);
/* {"ip","dc","server","server_addr","slice":[lo,hi],"tags","state","deadline"?} of slot s of ip. */
json_t *cli_slot_json(const struct su_plan *p, const struct su_plan_ip *ip, uint32_t s);
/* Prints a JSON value on stdout, newline-terminated; returns an exit code. */
int cli_print_json(json_t *v);

#endif
