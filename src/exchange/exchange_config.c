/*
 * exchange_config.c: the exchange module's [exchange] configuration
 * section, and the values a room of the exchange reads
 * (exchange_settings()). Which keys a node uses depends on its
 * server.role: the central node publishes the global configuration
 * (conf_validity_s), a gateway downloads it (central_url, central_cert,
 * conf_refresh_s) and those of the instances it trusts
 * (federation_refresh_s) and exchanges messages; a gateway without central_url
 * is refused when it starts.
 */
#include <stddef.h>
#include <string.h>

#include "exchange/exchange.h"
#include "core/banned.h"

#define OFF(field) offsetof(exchange_config, field)

static const config_key keys[] = {
	{
		.name = "instance", .type = CONFIG_STRING, .offset = OFF(instance),
		.str_default = "MO", .expect = "1 to 64 of A-Z a-z 0-9 _ . -",
		.desc = "Identifier of this data exchange instance (the first part of "
			"every member, subsystem and service identifier).",
	},
	{
		.name = "conf_validity_s", .type = CONFIG_INT,
		.offset = OFF(conf_validity_s), .int_default = 600, .min = 10, .max = 604800,
		.desc = "Central node: seconds a published global configuration stays "
			"valid. Gateways keep working from their last valid copy while "
			"the central node is unreachable, until it expires.",
	},
	{
		.name = "central_url", .type = CONFIG_STRING,
		.offset = OFF(central_url), .str_default = "",
		.expect = "\"\" or an http(s) URL",
		.desc = "Gateway: base URL of the central node, from which the global "
			"configuration is downloaded (GET /exchange/v1/globalconf).",
	},
	{
		.name = "central_cert", .type = CONFIG_STRING,
		.offset = OFF(central_cert), .str_default = "",
		.expect = "\"\" or a path to a PEM file",
		.desc = "Gateway: the central node's configuration signing certificate "
			"(DATA/exchange/central.crt on the central node). A global "
			"configuration not signed by it is refused.",
	},
	{
		.name = "gateway_url", .type = CONFIG_STRING,
		.offset = OFF(gateway_url), .str_default = "",
		.expect = "\"\" or https://HOST:PORT",
		.desc = "Gateway: this gateway's peer address as registered for its "
			"subsystems. The gateway serves the subsystems registered with "
			"this address whose signing keys it holds.",
	},
	{
		.name = "conf_refresh_s", .type = CONFIG_INT,
		.offset = OFF(conf_refresh_s), .int_default = 60, .min = 1, .max = 86400,
		.desc = "Gateway: seconds between two downloads of the global configuration.",
	},
	{
		.name = "federation_refresh_s", .type = CONFIG_INT,
		.offset = OFF(federation_refresh_s), .int_default = 60, .min = 1, .max = 86400,
		.desc = "Gateway: seconds between two downloads of the global configuration "
			"of each other instance the local one trusts (federation), from the "
			"URL the local registry publishes for it.",
	},
	{
		.name = "clock_skew_s", .type = CONFIG_INT,
		.offset = OFF(clock_skew_s), .int_default = 300, .min = 1, .max = 3600,
		.desc = "Largest accepted difference between a message's signing time "
			"and this node's clock; message ids are remembered this long to "
			"refuse replays.",
	},
	{
		.name = "backend_timeout_ms", .type = CONFIG_INT,
		.offset = OFF(backend_timeout_ms), .int_default = 30000, .min = 10, .max = 600000,
		.desc = "Gateway: how long the provider's gateway waits for a back-end, "
			"and the consumer's for the provider (plus a margin), before 504.",
	},
	{
		.name = "timestamp_interval_s", .type = CONFIG_INT,
		.offset = OFF(timestamp_interval_s), .int_default = 60, .min = 1, .max = 86400,
		.desc = "Gateway: seconds between two seals of the message log (one "
			"RFC 3161 timestamp covers every record since the last).",
	},
	{
		.name = "timestamp_grace_s", .type = CONFIG_INT,
		.offset = OFF(timestamp_grace_s), .int_default = 14400, .min = 1, .max = 604800,
		.desc = "Gateway: when the message log has records unsealed for longer "
			"than this (the TSA unreachable), new exchanges are refused with "
			"503 until a seal succeeds.",
	},
	{
		.name = "retry_ms", .type = CONFIG_INT, .offset = OFF(retry_ms),
		.int_default = 1000, .min = 10, .max = 86400000,
		.desc = "Publish/subscribe: delay before the first redelivery of an "
			"event a subscriber did not accept; each further one waits twice "
			"as long, up to exchange.retry_max_s.",
	},
	{
		.name = "retry_max_s", .type = CONFIG_INT, .offset = OFF(retry_max_s),
		.int_default = 3600, .min = 1, .max = 86400,
		.desc = "Publish/subscribe: longest delay between two redeliveries.",
	},
};

const config_section exchange_config_section = {
	.name = "exchange",
	.desc = "The data exchange: registry, global configuration, gateway, message log, publish/subscribe.",
	.keys = keys,
	.nkeys = sizeof keys / sizeof keys[0],
	.size = sizeof(exchange_config),
};

/* The keys' defaults, for a config made without config_init (unit tests
 * that build an egov_config by hand). */
static const exchange_config defaults = {
	.instance = "MO",
	.conf_validity_s = 600,
	.central_url = "",
	.central_cert = "",
	.gateway_url = "",
	.conf_refresh_s = 60,
	.federation_refresh_s = 60,
	.clock_skew_s = 300,
	.backend_timeout_ms = 30000,
	.timestamp_interval_s = 60,
	.timestamp_grace_s = 14400,
	.retry_ms = 1000,
	.retry_max_s = 3600,
};

const exchange_config *exchange_settings(const egov_config *cfg)
{
	const exchange_config *xc = cfg ? config_section_values(cfg, &exchange_config_section) : NULL;

	return xc ? xc : &defaults;
}

bool exchange_is_gateway(const egov_config *cfg)
{
	return cfg && cfg->role && strcmp(cfg->role, "gateway") == 0;
}
