/*
 * core/config_internal.h — what the files of the config share (config.c parses the file and the
 * numbers, config_access.c who may do what: quotas, admin keys, the metrics listener, the hosts
 * artifacts may come from). Not for other modules: they read struct config.
 */
#ifndef SLUICE_CORE_CONFIG_INTERNAL_H
#define SLUICE_CORE_CONFIG_INTERNAL_H

#include <cJSON.h>

#include "core/config.h"
#include "core/err.h"

/* obj[key] when it is a string, else NULL. Borrowed. */
const char *config_get_string(const cJSON *obj, const char *key);

/*
 * Resolves a secret reference: "env:NAME" reads the environment, anything else is the literal
 * value. Returns 0 with *out (caller frees), or CORE_EINVAL naming field.
 */
int config_resolve_secret(const char *value, const char *field, char **out, struct core_err *err);

/* "host:port" into *host (caller frees) and *port. Returns 0 or CORE_EINVAL naming field. */
int config_parse_host_port(const char *s, const char *field, char **host, int *port,
                           struct core_err *err);

/* quotas.tenants (config_access.c). Returns 0 or a negative code with err naming the field. */
int config_parse_quotas(struct config *cfg, const cJSON *root, struct core_err *err);

/* admin_keys, metrics_listen, blobs.allow_hosts, the derived max_connections (config_access.c). */
int config_parse_access(struct config *cfg, const cJSON *root, struct core_err *err);

/* Frees what config_parse_quotas and config_parse_access allocated. */
void config_access_free(struct config *cfg);

#endif
