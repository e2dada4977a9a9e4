/* The --store options every plan-reading or plan-writing command shares, and
 * the store config file (TLS and credentials: secrets stay off command lines).
 *
 * Config file (--store-config FILE, else $SOFTUNICAST_STORE_CONFIG, else
 * /etc/softunicast/store.conf when it exists), one "key value" per line, '#'
 * comments:  ca FILE | cert FILE | key FILE | user NAME | password SECRET |
 * password-file FILE | keep N.  Flags override the file. */
#ifndef SU_CLI_STORE_H
#define SU_CLI_STORE_H

#include <getopt.h>
#include <stdbool.h>

#include "lib/store/store.h"

#define CLI_STORE_DEFAULT_CONFIG "/etc/softunicast/store.conf"

struct cli_store_flags {
	const char *url, *config;
	const char *ca, *cert, *key, *user, *password_file;
	unsigned keep;
};

/* getopt_long entries for the flags (values 0x5300 + n): append to a table. */
#define CLI_STORE_OPTIONS                                                                                   \
	{ "store", required_argument, NULL, 0x5300 }, { "store-config", required_argument, NULL, 0x5301 },  \
	{ "store-ca", required_argument, NULL, 0x5302 }, { "store-cert", required_argument, NULL, 0x5303 }, \
	{ "store-key", required_argument, NULL, 0x5304 }, { "store-user", required_argument, NULL, 0x5305 }, \
	{ "store-password-file", required_argument, NULL, 0x5306 }, { "keep", required_argument, NULL, 0x5307 }
#define CLI_STORE_USAGE                                                                                     \
	"Store options (see softunicast-store(1)):\n"                                                         \
	"      --store URL            file:///PATH or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]\n"            \
	"      --store-config FILE    TLS files and credentials (default $SOFTUNICAST_STORE_CONFIG,\n"       \
	"                             then " CLI_STORE_DEFAULT_CONFIG ")\n"                                   \
	"      --store-ca FILE        CA bundle: talk TLS to etcd\n"                                          \
	"      --store-cert FILE, --store-key FILE   client certificate and key (PEM)\n"                     \
	"      --store-user NAME, --store-password-file FILE   etcd user and password\n"                    \
	"      --keep N               committed versions kept in etcd (default 10)\n"

/* 1: c was a store flag (consumed); 0: not one; <0: bad value (printed). */
int cli_store_flag(const char *cmd, int c, const char *arg, struct cli_store_flags *f);

/* Config file + flags into o (strings live as long as the process); an
 * exit code (printed) on a bad config file. */
int cli_store_options(const char *cmd, const struct cli_store_flags *f, struct su_store_opts *o);

/* Opens f->url with config file + flags; prints "softunicast CMD: ..." and
 * returns NULL on failure. */
struct su_store *cli_store_open(const char *cmd, const struct cli_store_flags *f);

/* The exit code of the last cli_store_open failure (2 usage, 3 bad config). */
int cli_store_exit(void);

/* A view of a committed serial (0: current) of the store at url; NULL and
 * a printed error when it cannot be read. */
struct su_plan *cli_store_load(const char *cmd, const char *url, uint64_t serial);

/* Prints the operations (pins, drains) kept with serial of the store at url,
 * "# operations: none" when there are none. */
void cli_store_print_ops(const char *url, uint64_t serial);

/* Re-plans against the store's current plan and publishes it as the next
 * serial, with the fleet (fleet_path, else the stored one) and the stored
 * operations after edit() changed them; the fleet and operations are stored
 * with the version.  from_serial: take fleet and operations from that kept
 * version (rollback).  dry_run: print the diff, write nothing.  Returns an
 * exit code. */
struct su_ops;
struct su_fleet;
struct cli_replan {
	const char *fleet_path;
	uint64_t from_serial;
	int64_t now;
	bool dry_run, json;
	int (*edit)(const char *cmd, struct su_ops *ops, const struct su_fleet *fleet, void *arg);
	void *arg;
};
int cli_store_replan(const char *cmd, const struct cli_store_flags *f, const struct cli_replan *r);

/* diff.c: prints what changed from a to b (text or JSON); an exit code. */
int cli_diff_print(const struct su_plan *a, const struct su_plan *b, bool json);

#endif
