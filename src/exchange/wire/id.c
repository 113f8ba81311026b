/*
 * id.c: identifiers of the data exchange: INSTANCE/CLASS/CODE (a member),
 * plus /SUBSYSTEM, plus /SERVICE. Each part is 1 to EXCHANGE_PART_MAX
 * characters of [A-Za-z0-9_.-]; nothing else (no empty part, no leading
 * or trailing '/', no escapes) so an id is also safe in a URL path, a file
 * name (with '/' as '+') and a log line.
 */
#include <string.h>

#include "exchange/wire/wire.h"
#include "core/banned.h"

static bool part_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
	       ch == '.' || ch == '-';
}

bool exchange_id_part_valid(const char *s)
{
	size_t n = 0;

	if (!s)
		return false;
	for (; s[n]; n++)
		if (!part_char(s[n]) || n >= EXCHANGE_PART_MAX)
			return false;
	return n > 0;
}

bool exchange_id_valid(const char *s, exchange_id_kind kind)
{
	int parts = 0;
	size_t len = 0;

	if (!s)
		return false;
	for (;; s++) {
		if (*s == '/' || *s == '\0') {
			if (len == 0)
				return false;
			parts++;
			len = 0;
			if (*s == '\0')
				break;
			continue;
		}
		if (!part_char(*s) || ++len > EXCHANGE_PART_MAX)
			return false;
	}
	return parts == (int)kind;
}

egov_err exchange_id_prefix(const char *id, int n, char out[EXCHANGE_ID_MAX])
{
	const char *p = id;
	int seen = 0;
	size_t len;

	out[0] = '\0';
	if (!id || n < 1)
		return EGOV_EINVAL;
	for (;; p++) {
		if (*p == '/' || *p == '\0') {
			if (++seen == n)
				break;
			if (*p == '\0')
				return EGOV_EINVAL;
		}
	}
	len = (size_t)(p - id);
	if (len == 0 || len >= EXCHANGE_ID_MAX)
		return EGOV_EINVAL;
	memcpy(out, id, len);
	out[len] = '\0';
	return EGOV_OK;
}

void exchange_id_json(jw *w, const char *id)
{
	static const char *const keys[] = {"instanceId", "memberClass", "memberCode", "applicationCode",
					   "serviceCode"};
	char part[EXCHANGE_PART_MAX + 1];
	const char *p = id;
	size_t k, n;

	for (k = 0; p && k < sizeof keys / sizeof keys[0]; k++) {
		n = strcspn(p, "/");
		if (n > EXCHANGE_PART_MAX)
			n = EXCHANGE_PART_MAX;
		memcpy(part, p, n);
		part[n] = '\0';
		jw_kstr(w, keys[k], part);
		p += strcspn(p, "/");
		p = *p ? p + 1 : NULL;
	}
}

bool exchange_id_in_instance(const char *id, const char *instance)
{
	size_t n = strlen(instance);

	return id && strncmp(id, instance, n) == 0 && id[n] == '/';
}
