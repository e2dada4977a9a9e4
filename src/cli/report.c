/* softunicast report — a picture of the egress address space.
 *
 * One self-contained HTML page (inline SVG and CSS, no script, nothing
 * fetched): each egress prefix as a grid of IPs (rows) by slices (columns),
 * each slot coloured by the data center that owns its IP, draining slots
 * hatched, free slots grey, addresses no DC holds dashed; a hover label per
 * slot (SVG <title>) and the same facts as data-* attributes for scripts and
 * tests.  Then the cost summary as a bar chart: IPs in use against one IP
 * per server per tag-set (the design soft-unicast replaces) and the lower
 * bound.  An operator opens it instead of reading the plan. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "lib/util.h"

static const char usage_text[] =
	"Usage: softunicast report --plan PLAN --out FILE.html [--max-rows N]\n"
	"\n"
	"Writes a self-contained HTML page (inline SVG, no network fetches) that\n"
	"draws the plan's egress space: one grid per prefix, a row per IP and a\n"
	"column per slice, each slot coloured by the data center owning the IP.\n"
	"Active slots are solid, draining slots hatched, free slots grey; in\n"
	"prefixes of 256 addresses or fewer, addresses no data center holds are\n"
	"drawn as dashed rows.  Hovering a slot shows IP, slice, data center,\n"
	"server, state, deadline and tags.  A bar chart compares the IPs in use\n"
	"with one IP per server per tag-set and with the lower bound.\n"
	"\n"
	"Every slot is an SVG <rect class=\"slot\"> carrying data-ip, data-slice,\n"
	"data-dc, data-server and data-state, so scripts can read the page too.\n"
	"\n"
	"Options:\n"
	"  -p, --plan FILE     the plan to draw\n"
	"  -o, --out FILE      where to write the page (replaced atomically)\n"
	"  -m, --max-rows N    draw at most N IP rows in all (default 2048); the\n"
	"                      page says how many were left out.  A row costs\n"
	"                      about 8 KB of HTML at 31 slices per IP.\n"
	"  -h, --help          this text\n"
	"\n"
	"Exit status: 0 ok, 1 cannot write FILE, 2 usage, 3 invalid plan.\n";

#define CELL 12   /* px per slot, gap included */
#define LABEL 118 /* px for the IP column */
#define SMALL_PREFIX 256

/* Distinct on white and for the common forms of colour blindness first;
 * beyond them, hues spaced by the golden angle. */
static const char *const palette[] = {
	"#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00",
	"#7a5195", "#3d9970", "#b8860b", "#8b0000", "#2f4f4f", "#ff6f61",
};
#define N_PALETTE (sizeof(palette) / sizeof(palette[0]))

struct page {
	FILE *f;
	const struct su_plan *p;
	char (*colour)[8]; /* per DC, "#rrggbb" */
	uint32_t rows_left;
	uint64_t rows_skipped;
};

/* HSL to "#rrggbb" (CSS Color 4, section 7.1). */
static void hsl_hex(double h, double s, double l, char out[8])
{
	double c = (1 - fabs(2 * l - 1)) * s, x = c * (1 - fabs(fmod(h / 60, 2) - 1)), m = l - c / 2;
	static const int order[6][3] = { { 0, 1, 2 }, { 1, 0, 2 }, { 2, 0, 1 }, { 2, 1, 0 }, { 1, 2, 0 }, { 0, 2, 1 } };
	const double v[3] = { c, x, 0 };
	const int *o = order[(int)(h / 60) % 6];

	snprintf(out, 8, "#%02x%02x%02x", (int)((v[o[0]] + m) * 255 + .5), (int)((v[o[1]] + m) * 255 + .5),
		 (int)((v[o[2]] + m) * 255 + .5));
}

static void dc_colour(uint32_t i, char out[8])
{
	if (i < N_PALETTE)
		snprintf(out, 8, "%s", palette[i]);
	else
		hsl_hex((double)((i * 137508u) % 360000u) / 1000, 0.55, 0.45, out);
}

/* Names and tags come from the fleet file: escape everything that HTML or an
 * attribute value could read as markup. */
static void put_html(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void put_tags(FILE *f, const struct su_tags *t)
{
	char *s = su_tags__format(t);

	put_html(f, s ? s : "?");
	free(s);
}

static void head(struct page *pg)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<title>softunicast address space</title>\n<style>\n"
	      "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}\n"
	      "h1{font-size:20px}h2{font-size:16px;margin:24px 0 4px}\n"
	      "table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}\n"
	      ".sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}\n"
	      "rect.slot:hover{stroke:#000;stroke-width:2}\n"
	      "text{font:10px monospace;fill:#444}\n.note{color:#666}\n"
	      "</style></head><body>\n", pg->f);
	fprintf(pg->f, "<h1>softunicast address space &mdash; plan serial %" PRIu64 "</h1>\n", pg->p->serial);
	fprintf(pg->f, "<p class=\"note\">ports %u&ndash;%u in slices of %u: %u slices per IP; drain %" PRId64 " s</p>\n",
		pg->p->port_lo, pg->p->port_hi, pg->p->slice_size, pg->p->slices_per_ip, pg->p->drain);
}

static void legend(struct page *pg)
{
	FILE *f = pg->f;

	fputs("<h2>Data centers</h2>\n<table id=\"legend\"><tr><th>DC</th><th>router</th><th>IPs</th></tr>\n", f);
	for (uint32_t d = 0; d < pg->p->n_dcs; d++) {
		char a[SU_ADDR_STRLEN];
		uint32_t ips = 0;

		for (uint32_t i = 0; i < pg->p->n_ips; i++)
			ips += pg->p->ips[i].dc == d;
		fprintf(f, "<tr class=\"dc\" data-dc=\"");
		put_html(f, pg->p->dcs[d].name);
		fprintf(f, "\" data-colour=\"%s\"><td><span class=\"sw\" style=\"background:%s\"></span>", pg->colour[d],
			pg->colour[d]);
		put_html(f, pg->p->dcs[d].name);
		fprintf(f, "%s</td><td>%s</td><td>%u</td></tr>\n", pg->p->dcs[d].retired ? " (retired)" : "",
			su_addr__str(pg->p->dcs[d].router, a), ips);
	}
	fputs("</table>\n<p><span class=\"sw\" style=\"background:#888\"></span>active "
	      "<svg width=\"12\" height=\"12\"><rect width=\"12\" height=\"12\" fill=\"url(#hatch-legend)\"/></svg> draining "
	      "<span class=\"sw\" style=\"background:#e4e4e4\"></span>free "
	      "<span class=\"sw\" style=\"border:1px dashed #999\"></span>address held by no DC</p>\n", f);
}

/* A hatch per DC for draining slots: the DC's colour in stripes on white. */
static void hatches(struct page *pg)
{
	fputs("<svg width=\"0\" height=\"0\" style=\"position:absolute\"><defs>\n"
	      "<pattern id=\"hatch-legend\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
	      "patternTransform=\"rotate(45)\"><rect width=\"4\" height=\"4\" fill=\"#fff\"/>"
	      "<rect width=\"2\" height=\"4\" fill=\"#888\"/></pattern>\n", pg->f);
	for (uint32_t d = 0; d < pg->p->n_dcs; d++)
		fprintf(pg->f, "<pattern id=\"hatch-%u\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
			"patternTransform=\"rotate(45)\"><rect width=\"4\" height=\"4\" fill=\"#fff\"/>"
			"<rect width=\"2\" height=\"4\" fill=\"%s\"/></pattern>\n", d, pg->colour[d]);
	fputs("</defs></svg>\n", pg->f);
}

static void slot_rect(struct page *pg, const struct su_plan_ip *ip, uint32_t s, uint32_t y)
{
	const struct su_plan *p = pg->p;
	const struct su_plan_slot *slot = &p->slots[ip->first_slot + s];
	const char *server = slot->server >= 0 ? p->servers[slot->server].name : "";
	uint32_t lo = su_plan__slot_lo(p, s);
	char a[SU_ADDR_STRLEN], fill[16];
	FILE *f = pg->f;

	if (slot->state == SU_ACTIVE)
		snprintf(fill, sizeof(fill), "%s", pg->colour[ip->dc]);
	else if (slot->state == SU_DRAINING)
		snprintf(fill, sizeof(fill), "url(#hatch-%u)", ip->dc);
	else
		snprintf(fill, sizeof(fill), "#e4e4e4");
	su_addr__str(ip->ip, a);
	fprintf(f, "<rect class=\"slot\" x=\"%u\" y=\"%u\" width=\"%d\" height=\"%d\" fill=\"%s\" data-ip=\"%s\" "
		"data-slice=\"%u-%u\" data-dc=\"", LABEL + s * CELL, y, CELL - 1, CELL - 1, fill, a, lo,
		lo + p->slice_size - 1);
	put_html(f, p->dcs[ip->dc].name);
	fputs("\" data-server=\"", f);
	put_html(f, server);
	fprintf(f, "\" data-state=\"%s\"><title>%s ports %u-%u\nDC ", su_state__name(slot->state), a, lo,
		lo + p->slice_size - 1);
	put_html(f, p->dcs[ip->dc].name);
	fputs("\nserver ", f);
	put_html(f, slot->server >= 0 ? server : "(none)");
	fprintf(f, "\n%s", su_state__name(slot->state));
	if (slot->state == SU_DRAINING)
		fprintf(f, " until %" PRId64, slot->deadline);
	fputs("\ntags ", f);
	put_tags(f, &p->prefixes[ip->prefix].tags);
	fputs("</title></rect>\n", f);
}

static void ip_row(struct page *pg, const struct su_plan_ip *ip, uint32_t y)
{
	char a[SU_ADDR_STRLEN];

	fprintf(pg->f, "<text x=\"0\" y=\"%u\">%s%s</text>\n", y + CELL - 2, su_addr__str(ip->ip, a),
		ip->state == SU_DRAINING ? " (moving)" : "");
	for (uint32_t s = 0; s < pg->p->slices_per_ip; s++)
		slot_rect(pg, ip, s, y);
}

/* A run of addresses no DC holds: one dashed row, so a mostly empty
 * prefix stays short. */
static void unheld_row(struct page *pg, uint32_t from, uint32_t n, uint32_t y)
{
	char a[SU_ADDR_STRLEN], b[SU_ADDR_STRLEN];

	su_addr__str(from, a);
	su_addr__str(from + n - 1, b);
	fprintf(pg->f, "<text x=\"0\" y=\"%u\">%s%s</text><rect class=\"unheld\" x=\"%u\" y=\"%u\" width=\"%u\" "
		"height=\"%d\" fill=\"none\" stroke=\"#999\" stroke-dasharray=\"3 2\" data-ip=\"%s\" "
		"data-count=\"%u\"><title>%s%s%s: %u address%s held by no data center</title></rect>\n",
		y + CELL - 2, a, n > 1 ? " ..." : "", LABEL, y, pg->p->slices_per_ip * CELL - 1, CELL - 1, a, n, a,
		n > 1 ? " - " : "", n > 1 ? b : "", n, n > 1 ? "es" : "");
}

/* Plan IPs are sorted: the first one at or after addr. */
static uint32_t first_ip_from(const struct su_plan *p, uint32_t addr)
{
	uint32_t lo = 0, hi = p->n_ips;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (p->ips[mid].ip < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t held_in(const struct su_plan *p, const struct su_prefix4 *pfx, uint32_t *first)
{
	uint32_t i = *first = first_ip_from(p, pfx->addr), n = 0;

	for (; i < p->n_ips && su_prefix__contains(pfx, p->ips[i].ip); i++)
		n++;
	return n;
}

/* Rows of a prefix: its held IPs, and in a small prefix one row per run
 * of addresses between them that no DC holds. */
static uint32_t count_rows(const struct su_plan *p, const struct su_prefix4 *pfx, uint32_t first, uint32_t held)
{
	uint64_t next = pfx->addr, end = next + su_prefix__size(pfx);
	uint32_t rows = held;

	if (su_prefix__size(pfx) > SMALL_PREFIX)
		return held;
	for (uint32_t i = first; i < first + held; next = (uint64_t)p->ips[i++].ip + 1)
		rows += p->ips[i].ip != next;
	return rows + (next < end);
}

static void prefix_grid(struct page *pg, const struct su_plan_prefix *pr)
{
	const struct su_plan *p = pg->p;
	uint32_t first, held = held_in(p, &pr->prefix, &first), rows = count_rows(p, &pr->prefix, first, held);
	uint32_t drawn = rows < pg->rows_left ? rows : pg->rows_left, y = 14, i = first;
	uint64_t addr = pr->prefix.addr, end = addr + su_prefix__size(&pr->prefix);
	bool all = su_prefix__size(&pr->prefix) <= SMALL_PREFIX;
	char b[SU_PREFIX_STRLEN];

	fprintf(pg->f, "<h2 class=\"prefix\">%s", su_prefix__str(&pr->prefix, b));
	fputs(" <span class=\"note\">", pg->f);
	put_tags(pg->f, &pr->tags);
	fprintf(pg->f, "%s &mdash; %u of %" PRIu64 " addresses held</span></h2>\n", pr->retired ? " (retired)" : "",
		held, su_prefix__size(&pr->prefix));
	fprintf(pg->f, "<svg class=\"grid\" width=\"%u\" height=\"%u\">\n", LABEL + p->slices_per_ip * CELL,
		y + drawn * CELL);
	for (uint32_t s = 0; s < p->slices_per_ip; s += 4)
		fprintf(pg->f, "<text x=\"%u\" y=\"10\">%u</text>\n", LABEL + s * CELL, su_plan__slot_lo(p, s));
	for (uint32_t r = 0; r < drawn; r++, y += CELL) {
		uint64_t next = i < first + held ? p->ips[i].ip : end;

		if (all && addr < next) {
			unheld_row(pg, (uint32_t)addr, (uint32_t)(next - addr), y);
			addr = next;
		} else {
			ip_row(pg, &p->ips[i], y);
			addr = (uint64_t)p->ips[i++].ip + 1;
		}
	}
	fputs("</svg>\n", pg->f);
	if (drawn < rows)
		fprintf(pg->f, "<p class=\"note skipped\">%u more rows not drawn (raise --max-rows)</p>\n", rows - drawn);
	pg->rows_left -= drawn;
	pg->rows_skipped += rows - drawn;
}

static void bar(FILE *f, uint32_t y, const char *label, uint64_t v, uint64_t max, const char *colour,
		const char *id)
{
	uint32_t w = max ? (uint32_t)(v * 600 / max) : 0;

	fprintf(f, "<text x=\"0\" y=\"%u\">%s</text><rect id=\"%s\" x=\"230\" y=\"%u\" width=\"%u\" height=\"18\" "
		"fill=\"%s\" data-value=\"%" PRIu64 "\"/><text x=\"%u\" y=\"%u\">%" PRIu64 "</text>\n",
		y + 13, label, id, y, w ? w : 1, colour, v, 236 + w, y + 13, v);
}

static void cost_chart(struct page *pg)
{
	struct su_plan_cost c;
	uint64_t used, max;

	su_plan__cost(pg->p, &c);
	used = c.active_ips + c.draining_ips;
	max = used > c.per_server ? used : c.per_server;
	fprintf(pg->f, "<h2>Cost in IPv4 addresses</h2>\n<p>%" PRIu64 " in use (%" PRIu64 " draining); "
		"one IP per server per tag-set would need %" PRIu64 "; lower bound %" PRIu64 ".  Slices: %" PRIu64
		" active, %" PRIu64 " draining, %" PRIu64 " free.</p>\n",
		used, c.draining_ips, c.per_server, c.lower_bound, c.slices_active, c.slices_draining, c.slices_free);
	fputs("<svg id=\"cost\" width=\"900\" height=\"78\">\n", pg->f);
	bar(pg->f, 0, "IPs in use (soft-unicast)", used, max, "#0072b2", "cost-used");
	bar(pg->f, 26, "one IP per server per tag-set", c.per_server, max, "#d55e00", "cost-per-server");
	bar(pg->f, 52, "lower bound", c.lower_bound, max, "#009e73", "cost-lower-bound");
	fputs("</svg>\n", pg->f);
}

static int write_page(FILE *f, const void *arg)
{
	struct page *pg = (struct page *)arg;

	pg->f = f;
	head(pg);
	hatches(pg);
	cost_chart(pg);
	legend(pg);
	for (uint32_t i = 0; i < pg->p->n_prefixes; i++)
		prefix_grid(pg, &pg->p->prefixes[i]);
	if (pg->rows_skipped)
		fprintf(f, "<p class=\"note\">%" PRIu64 " IP rows left out in all.</p>\n", pg->rows_skipped);
	fputs("</body></html>\n", f);
	return ferror(f) ? -EIO : 0;
}

/* Replaced atomically: a browser or web server reading the old page never
 * sees half of the new one. */
static int report_write(const struct su_plan *p, const char *out, uint32_t max_rows)
{
	struct page pg = { .p = p, .rows_left = max_rows };
	int ret;

	pg.colour = calloc(p->n_dcs ? p->n_dcs : 1, sizeof(*pg.colour));
	if (!pg.colour)
		return -ENOMEM;
	for (uint32_t d = 0; d < p->n_dcs; d++)
		dc_colour(d, pg.colour[d]);
	ret = su_write_atomic(out, write_page, &pg);
	free(pg.colour);
	return ret;
}

static int parse_max_rows(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || *s == '+' || v == 0 || v > 1000000 ||
	    (s[0] == '0' && s[1]))
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int report_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "plan", required_argument, NULL, 'p' }, { "out", required_argument, NULL, 'o' },
		{ "max-rows", required_argument, NULL, 'm' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *plan_path = NULL, *out = NULL;
	uint32_t max_rows = 2048;
	struct su_plan *p;
	int c, ret;

	while ((c = getopt_long(argc, argv, "p:o:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': plan_path = optarg; break;
		case 'o': out = optarg; break;
		case 'm':
			if (parse_max_rows(optarg, &max_rows))
				return cli_fail(SU_EXIT_USAGE, "report",
						"--max-rows '%s': expected a whole number from 1 to 1000000", optarg);
			break;
		case 'h': fputs(usage_text, stdout); return SU_EXIT_OK;
		default: fputs(usage_text, stderr); return SU_EXIT_USAGE;
		}
	}
	if (!plan_path || !out || optind != argc)
		return cli_fail(SU_EXIT_USAGE, "report", "needs --plan PLAN and --out FILE.html; see --help");
	p = cli_load_plan("report", plan_path);
	if (!p)
		return SU_EXIT_INVALID;
	ret = report_write(p, out, max_rows);
	su_plan__free(p);
	if (ret)
		return cli_fail(SU_EXIT_FAIL, "report", "cannot write %s (--out): %s", out, strerror(-ret));
	return SU_EXIT_OK;
}
