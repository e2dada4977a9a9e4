/* Tags per connection, in this order (docs/proxy.md "Tag resolution"):
 *  1. a configured user (user NAME PASSWORD TAGS): its tags, password checked;
 *  2. with user-tags yes, a user name "country-GB" (base-tags + country=GB) or
 *     "tags:service=warp,country=GB" (exactly those tags);
 *  3. the client address's country (geo-csv, geo-mmdb): base-tags + country;
 *  4. default-tags.
 * Never a fallback after a match: tags with no egress here are refused by the
 * caller, not replaced by other tags. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/tags.h"
#include "proxy/proxy.h"

/* Constant-time comparison: the password check must not leak its length
 * of common prefix through timing. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return !d && la == lb;
}

static int with_country(const struct proxy_config *c, const char *cc, const char *source,
			struct proxy_tagsel *out)
{
	int n;

	if (strlen(cc) != 2 || !isalpha((unsigned char)cc[0]) || !isalpha((unsigned char)cc[1]))
		return -EINVAL;
	out->country[0] = (char)toupper((unsigned char)cc[0]);
	out->country[1] = (char)toupper((unsigned char)cc[1]);
	out->country[2] = 0;
	n = snprintf(out->tags, sizeof(out->tags), "%s%scountry=%s", c->base_tags ? c->base_tags : "",
		     c->base_tags ? "," : "", out->country);
	out->source = source;
	return n < 0 || (size_t)n >= sizeof(out->tags) ? -EINVAL : 0;
}

static int verbatim(const char *tags, const char *source, struct proxy_tagsel *out)
{
	struct su_tags t = { 0 };
	int rc = su_tags__parse(tags, &t, NULL);

	su_tags__free(&t);
	if (rc || strlen(tags) >= sizeof(out->tags))
		return -EINVAL;
	strcpy(out->tags, tags);
	out->source = source;
	return 0;
}

int proxy_tags__select(const struct proxy_config *c, struct proxy_geo *g, const char *user,
		       const char *pass, const struct sockaddr *client, struct proxy_tagsel *out)
{
	const char *cc;

	memset(out, 0, sizeof(*out));
	if (user && *user) {
		for (size_t i = 0; i < c->nusers; i++)
			if (!strcmp(c->users[i].name, user))
				return same_secret(pass ? pass : "", c->users[i].password)
					       ? verbatim(c->users[i].tags, "user", out)
					       : -EACCES;
		if (c->user_tags && !strncmp(user, "country-", 8))
			return with_country(c, user + 8, "username", out);
		if (c->user_tags && !strncmp(user, "tags:", 5))
			return verbatim(user + 5, "username", out);
		/* an unknown user name is a failed login, not an anonymous one */
		return -EACCES;
	}
	if (c->auth_required)
		return -EACCES;
	if ((cc = proxy_geo__country(g, client)))
		return with_country(c, cc, "geo", out);
	if (c->default_tags)
		return verbatim(c->default_tags, "default", out);
	return -ESRCH;
}
