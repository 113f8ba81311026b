/*
 * limits.h: every limit egov puts on outside input, each with its reason.
 *
 * Over a limit the answer is an error (413, 414, 431 or a 400 naming the
 * field), never a truncation. Per-route body limits live in the route
 * tables; EGOV_BODY_MAX_DEFAULT applies when a route names none.
 */
#ifndef EGOV_CORE_LIMITS_H
#define EGOV_CORE_LIMITS_H

/* Request line plus all header bytes. Real browsers send < 4 KiB; 16 KiB
 * leaves room for large cookies and certificates forwarded by a proxy.
 * libmicrohttpd holds them in a per-connection pool of this size. Over it:
 * 431 (or 414 while still in the request line). */
#define EGOV_HEADER_BYTES_MAX (16 * 1024)

/* Number of request headers. Browsers send ~15; 64 is generous and bounds
 * the work a header walk does. Over it: 431. */
#define EGOV_HEADER_COUNT_MAX 64

/* Length of the request target (path plus query). Our longest routes are far
 * below 1 KiB; 4 KiB covers long search queries. Over it: 414. */
#define EGOV_URI_MAX 4096

/* Path segments; a route has at most ~8, so 32 catches abuse cheaply. */
#define EGOV_PATH_SEGMENTS_MAX 32

/* Query parameters; forms have tens, not hundreds. Over it: 400. */
#define EGOV_QUERY_PARAMS_MAX 64

/* Default body size for a route that names none: JSON API bodies are small.
 * Over it: 413, checked on Content-Length before reading, and again while
 * reading a chunked body. */
#define EGOV_BODY_MAX_DEFAULT (64 * 1024)

/* Largest body any route may accept (uploads of documents). */
#define EGOV_BODY_MAX_UPLOAD (16 * 1024 * 1024)

/* Largest body a route that spools (route .spool: the body goes to a
 * temporary file, not memory) may accept: exchange payloads. Disk, not
 * memory, bounds it; per-service limits are lower. */
#define EGOV_BODY_MAX_SPOOLED (1024ull * 1024 * 1024)

/* JSON nesting depth. Our documents nest 4-5 deep; 32 stops stack abuse
 * long before cJSON's own 1000. Over it: 400 naming the depth. */
#define EGOV_JSON_DEPTH_MAX 32

/* Default longest JSON string field (bytes, UTF-8) unless the field table
 * says otherwise; titles and names fit comfortably. */
#define EGOV_JSON_STRING_MAX 4096

/* Default longest JSON array unless the field table says otherwise. */
#define EGOV_JSON_ARRAY_MAX 256

/* Members in one JSON object; field tables are far smaller. */
#define EGOV_JSON_MEMBERS_MAX 256

/* Memory a single request may take from its arena. */
#define EGOV_REQUEST_ARENA_MAX (4 * 1024 * 1024)

/* Response bodies built in memory (bufs); larger answers stream. */
#define EGOV_RESPONSE_MAX (8 * 1024 * 1024)

/* Connections: total, per client address, and the seconds a connection
 * may sit idle or trickle bytes before it is closed (slow-client defence). */
#define EGOV_CONNECTIONS_MAX_DEFAULT 1024
#define EGOV_CONNECTIONS_PER_IP_DEFAULT 128
#define EGOV_CONNECTION_TIMEOUT_DEFAULT 15
/* Seconds from a connection's opening (or its previous answer) within which
 * a whole request head must arrive. The idle timeout alone lets a client
 * that sends one byte every few seconds hold a connection for ever (MHD
 * restarts it on every byte). Longer than the idle timeout, so that an idle
 * kept-alive connection is still ended by that one. */
#define EGOV_HEAD_TIMEOUT_DEFAULT 20

/* A client-supplied X-Request-Id is kept only if short and printable. */
#define EGOV_REQUEST_ID_MAX 64

/* Config file size and line length: the file is written by an operator but
 * still parsed defensively. */
#define EGOV_CONFIG_FILE_MAX (256 * 1024)
#define EGOV_CONFIG_LINE_MAX 4096

#endif
