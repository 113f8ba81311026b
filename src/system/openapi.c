/*
 * openapi.c: docs/api/openapi.json built into the binary, so a node always
 * serves the description of the API it implements (the Makefile rebuilds
 * this object when the file changes).
 */
#include "system/system_int.h"
#include "core/banned.h"

__asm__(".section .rodata\n"
	".global egov_openapi_json\n"
	"egov_openapi_json:\n"
	".incbin \"docs/api/openapi.json\"\n"
	".global egov_openapi_json_end\n"
	"egov_openapi_json_end:\n"
	".byte 0\n"
	".previous\n");

extern const char egov_openapi_json[];
extern const char egov_openapi_json_end[];

const char *system_openapi(size_t *len)
{
	*len = (size_t)(egov_openapi_json_end - egov_openapi_json);
	return egov_openapi_json;
}
