/*
 * notify_config.c: the notify module's [mail] configuration section: the
 * SMTP relay the outbox delivers to, the sender, and the delivery rhythm.
 * The values are checked when set; there is no rule across keys.
 */
#include <stddef.h>

#include "notify/notify_int.h"
#include "core/banned.h"

#define OFF(field) offsetof(notify_config, field)

static const char *const starttls_modes[] = {"off", "opportunistic", "required", NULL};

static const config_key keys[] = {
	{
		.name = "smtp_host", .type = CONFIG_STRING, .offset = OFF(smtp_host),
		.str_default = "127.0.0.1", .check = config_check_nonempty,
		.expect = "a host name or IP address",
		.desc = "SMTP server the outbox delivers mail to (a relay of the "
			"department's mail system, or a local mail catcher in "
			"development).",
	},
	{
		.name = "smtp_port", .type = CONFIG_INT, .offset = OFF(smtp_port),
		.int_default = 25, .min = 1, .max = 65535,
		.desc = "TCP port of the SMTP server (25 or 587 for submission).",
	},
	{
		.name = "from", .type = CONFIG_STRING, .offset = OFF(from),
		.str_default = "egov <no-reply@egov.invalid>", .check = config_check_nonempty,
		.expect = "an address, optionally as \"Name <local@domain>\"",
		.desc = "Sender of every message: the From header and, for the "
			"address part, the SMTP envelope sender.",
	},
	{
		.name = "starttls", .type = CONFIG_ENUM, .offset = OFF(starttls),
		.str_default = "opportunistic", .allowed = starttls_modes,
		.desc = "off: never encrypt. opportunistic: encrypt when the server "
			"offers STARTTLS, without checking its certificate. required: "
			"refuse to send unless STARTTLS succeeds with a certificate "
			"valid for smtp_host.",
	},
	{
		.name = "user", .type = CONFIG_STRING, .offset = OFF(user),
		.str_default = "",
		.expect = "\"\" or a user name",
		.desc = "User name for SMTP AUTH (PLAIN or LOGIN). Empty means no "
			"AUTH. Credentials are only sent over TLS or to a loopback "
			"server.",
	},
	{
		.name = "password", .type = CONFIG_STRING, .offset = OFF(password),
		.str_default = "", .secret = true,
		.expect = "\"\" or a password",
		.desc = "Password for SMTP AUTH. Prefer the environment variable "
			"EGOV_MAIL_PASSWORD to writing it in a file.",
	},
	{
		.name = "poll_ms", .type = CONFIG_INT, .offset = OFF(poll_ms),
		.int_default = 1000, .min = 10, .max = 3600000,
		.desc = "Milliseconds between two looks at the outbox for mail that "
			"is due.",
	},
	{
		.name = "retry_ms", .type = CONFIG_INT, .offset = OFF(retry_ms),
		.int_default = 60000, .min = 10, .max = 86400000,
		.desc = "Delay before the first retry of a message that could not be "
			"delivered; each further retry waits twice as long (capped at "
			"one day).",
	},
	{
		.name = "max_attempts", .type = CONFIG_INT, .offset = OFF(max_attempts),
		.int_default = 10, .min = 1, .max = 100,
		.desc = "Delivery attempts before a message is marked failed. A "
			"permanent refusal (5xx to MAIL, RCPT or DATA) fails it at once.",
	},
	{
		.name = "timeout_s", .type = CONFIG_INT, .offset = OFF(timeout_s),
		.int_default = 30, .min = 1, .max = 600,
		.desc = "Seconds to wait for the SMTP server to connect or answer "
			"one command before the attempt counts as failed.",
	},
};

const config_section notify_config_section = {
	.name = "mail",
	.desc = "Mail delivery from the outbox over SMTP.",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(notify_config),
};
