/* The networks, endpoints and ports tables. Single statements, so each joins the caller's
 * transaction when one is open; the callers serialise on the root's network lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/json.h"
#include "internal.h"

static int bind_text(struct ks_db *db, sqlite3_stmt *st, int i, const char *s,
                     struct ks_error **err)
{
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : ks_db_error(db, rc, "bind", err);
}

static char *col(sqlite3_stmt *st, int i, bool *oom)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    char *s = strdup((const char *)sqlite3_column_text(st, i));
    if (s == NULL)
        *oom = true;
    return s;
}

/* Prepares sql and binds the n texts (NULL: SQL NULL). */
static int prep(struct ks_db *db, const char *sql, const char *const *texts, int n,
                sqlite3_stmt **ret, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, sql, &st, err);
    for (int i = 0; r >= 0 && i < n; i++)
        r = bind_text(db, st, i + 1, texts[i], err);
    if (r < 0)
        return r;
    *ret = TAKE_PTR(st);
    return 0;
}

static int run(struct ks_db *db, const char *sql, const char *const *texts, int n, const char *what,
               struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db, sql, texts, n, &st, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, what, err);
    return r < 0 ? r : 0;
}

void ks_net_record_free(struct ks_net_record *n)
{
    if (n == NULL)
        return;
    free(n->id);
    free(n->name);
    free(n->driver);
    json_object_put(n->config);
    free(n);
}

void ks_net_records_free(struct ks_net_record **v)
{
    for (size_t i = 0; v && v[i]; i++)
        ks_net_record_free(v[i]);
    free(v);
}

int ks_netdb_put(struct ks_db *db, const struct ks_net_record *n, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    const char *t[] = {n->id, n->name, n->driver, ks_json_plain(n->config)};
    int r = prep(db,
                 "INSERT INTO networks (id, name, driver, config, created) "
                 "VALUES (?1, ?2, ?3, ?4, ?5)",
                 t, 4, &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_int64(st, 5, n->created);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return ks_error_set_plain(err, EEXIST, "network with name %s already exists", n->name);
    return ks_db_error(db, rc, "record network", err);
}

#define NET_COLUMNS "SELECT id, name, driver, created, config FROM networks"

static int net_row(sqlite3_stmt *st, struct ks_net_record **ret, struct ks_error **err)
{
    _cleanup_net_record_ struct ks_net_record *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return ks_error_set(err, ENOMEM, "load network");
    bool oom = false;
    n->id = col(st, 0, &oom);
    n->name = col(st, 1, &oom);
    n->driver = col(st, 2, &oom);
    n->created = sqlite3_column_int64(st, 3);
    _cleanup_free_ char *config = col(st, 4, &oom);
    if (oom)
        return ks_error_set(err, ENOMEM, "load network");
    if (config == NULL || ks_json_parse(config, strlen(config), &n->config, NULL) < 0)
        n->config = json_object_new_object();
    *ret = TAKE_PTR(n);
    return 0;
}

static int find_one(struct ks_db *db, const char *sql, const char *arg, struct ks_net_record **ret,
                    struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db, sql, &arg, 1, &st, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, "find network", err);
    if (r <= 0)
        return r < 0 ? r : -ENOENT;
    _cleanup_net_record_ struct ks_net_record *n = NULL;
    r = net_row(st, &n, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, "find network", err);
    if (r < 0)
        return r;
    if (r > 0)
        return -ENOTUNIQ;
    *ret = TAKE_PTR(n);
    return 0;
}

int ks_netdb_find(struct ks_db *db, const char *name_or_id, struct ks_net_record **ret,
                  struct ks_error **err)
{
    int r = find_one(db, NET_COLUMNS " WHERE id = ?1", name_or_id, ret, err);
    if (r != -ENOENT)
        return r;
    r = find_one(db, NET_COLUMNS " WHERE name = ?1", name_or_id, ret, err);
    if (r != -ENOENT)
        return r;
    bool hex = *name_or_id != '\0' && strspn(name_or_id, "0123456789abcdef") == strlen(name_or_id);
    if (hex) {
        _cleanup_free_ char *like = NULL;
        if (asprintf(&like, "%s%%", name_or_id) < 0)
            return ks_error_set(err, ENOMEM, "find network");
        r = find_one(db, NET_COLUMNS " WHERE id LIKE ?1", like, ret, err);
        if (r == -ENOTUNIQ)
            return ks_error_set_plain(err, ENOTUNIQ,
                                      "network %s is ambiguous (more than one match)", name_or_id);
        if (r != -ENOENT)
            return r;
    }
    return ks_error_set_plain(err, ENOENT, "network %s not found", name_or_id);
}

int ks_netdb_delete(struct ks_db *db, const char *id, struct ks_error **err)
{
    return run(db, "DELETE FROM networks WHERE id = ?1", &id, 1, "remove network", err);
}

int ks_netdb_set_config(struct ks_db *db, const char *id, json_object *config,
                        struct ks_error **err)
{
    const char *t[] = {ks_json_plain(config), id};
    return run(db, "UPDATE networks SET config = ?1 WHERE id = ?2", t, 2, "update network", err);
}

int ks_netdb_list(struct ks_db *db, struct ks_net_record ***ret, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = ks_db_prepare(db, NET_COLUMNS " ORDER BY created, id", &st, err);
    if (r < 0)
        return r;
    size_t n = 0;
    struct ks_net_record **v = calloc(1, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "list networks");
    while ((r = ks_db_step(db, st, "list networks", err)) > 0) {
        struct ks_net_record **nv = realloc(v, (n + 2) * sizeof(*v));
        if (nv == NULL) {
            r = ks_error_set(err, ENOMEM, "list networks");
            break;
        }
        v = nv;
        v[n + 1] = NULL;
        r = net_row(st, &v[n], err);
        if (r < 0)
            break;
        n++;
    }
    if (r < 0) {
        ks_net_records_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

/* --- endpoints --- */

void ks_net_ep_record_free(struct ks_net_ep_record *r)
{
    if (r == NULL)
        return;
    free(r->network_id);
    free(r->container_id);
    free(r->ipv4);
    free(r->mac);
    free(r->veth);
    free(r->ifname);
    json_object_put(r->aliases);
    free(r);
}

void ks_net_ep_records_free(struct ks_net_ep_record **v)
{
    for (size_t i = 0; v && v[i]; i++)
        ks_net_ep_record_free(v[i]);
    free(v);
}

int ks_netdb_ep_put(struct ks_db *db, const struct ks_net_ep_record *e, struct ks_error **err)
{
    const char *t[] = {e->network_id,
                       e->container_id,
                       e->ipv4,
                       e->mac,
                       e->veth,
                       e->ifname,
                       e->aliases ? ks_json_plain(e->aliases) : NULL};
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db,
                 "INSERT INTO endpoints (network_id, container_id, ipv4, mac, veth, ifname, "
                 "aliases) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 t, 7, &st, err);
    if (r < 0)
        return r;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return ks_error_set_plain(err, EADDRINUSE, "Address already in use: %s",
                                  e->ipv4 ? e->ipv4 : "?");
    return ks_db_error(db, rc, "record endpoint", err);
}

int ks_netdb_ep_delete(struct ks_db *db, const char *network_id, const char *container_id,
                       struct ks_error **err)
{
    const char *t[] = {network_id, container_id};
    return run(db, "DELETE FROM endpoints WHERE network_id = ?1 AND container_id = ?2", t, 2,
               "remove endpoint", err);
}

int ks_netdb_ep_list(struct ks_db *db, const char *network_id, const char *container_id,
                     struct ks_net_ep_record ***ret, struct ks_error **err)
{
    const char *sql = network_id ? "SELECT network_id, container_id, ipv4, mac, veth, ifname, "
                                   "aliases FROM endpoints WHERE network_id = ?1 ORDER BY ifname"
                                 : "SELECT network_id, container_id, ipv4, mac, veth, ifname, "
                                   "aliases FROM endpoints WHERE container_id = ?1 ORDER BY ifname";
    const char *arg = network_id ? network_id : container_id;
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db, sql, &arg, 1, &st, err);
    if (r < 0)
        return r;
    size_t n = 0;
    struct ks_net_ep_record **v = calloc(1, sizeof(*v));
    if (v == NULL)
        return ks_error_set(err, ENOMEM, "list endpoints");
    while ((r = ks_db_step(db, st, "list endpoints", err)) > 0) {
        struct ks_net_ep_record **nv = realloc(v, (n + 2) * sizeof(*v));
        struct ks_net_ep_record *e = calloc(1, sizeof(*e));
        if (nv)
            v = nv;
        if (nv == NULL || e == NULL) {
            free(e);
            r = ks_error_set(err, ENOMEM, "list endpoints");
            break;
        }
        v[n++] = e;
        v[n] = NULL;
        bool oom = false;
        e->network_id = col(st, 0, &oom);
        e->container_id = col(st, 1, &oom);
        e->ipv4 = col(st, 2, &oom);
        e->mac = col(st, 3, &oom);
        e->veth = col(st, 4, &oom);
        e->ifname = col(st, 5, &oom);
        _cleanup_free_ char *aliases = col(st, 6, &oom);
        if (aliases)
            ks_json_parse(aliases, strlen(aliases), &e->aliases, NULL);
        if (oom) {
            r = ks_error_set(err, ENOMEM, "list endpoints");
            break;
        }
    }
    if (r < 0) {
        ks_net_ep_records_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

int ks_netdb_ep_count(struct ks_db *db, const char *network_id, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r =
        prep(db, "SELECT count(*) FROM endpoints WHERE network_id = ?1", &network_id, 1, &st, err);
    if (r < 0)
        return r;
    r = ks_db_step(db, st, "count endpoints", err);
    if (r < 0)
        return r;
    return r > 0 ? sqlite3_column_int(st, 0) : 0;
}

/* --- ports --- */

int ks_netdb_port_put(struct ks_db *db, const struct ks_net_port_record *p, struct ks_error **err)
{
    const char *t[] = {p->container_id, p->proto, p->host_ip, p->ctr_ip};
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db,
                 "INSERT INTO ports (container_id, proto, host_ip, ctr_ip, host_port, ctr_port) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                 t, 4, &st, err);
    if (r < 0)
        return r;
    sqlite3_bind_int(st, 5, (int)p->host_port);
    sqlite3_bind_int(st, 6, (int)p->ctr_port);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        return ks_error_set_plain(err, EADDRINUSE,
                                  "Bind for %s:%u failed: port is already allocated",
                                  *p->host_ip ? p->host_ip : "0.0.0.0", p->host_port);
    return ks_db_error(db, rc, "record port", err);
}

int ks_netdb_ports_delete(struct ks_db *db, const char *container_id, struct ks_error **err)
{
    return run(db, "DELETE FROM ports WHERE container_id = ?1", &container_id, 1, "remove ports",
               err);
}

void ks_net_port_records_free(struct ks_net_port_record *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].container_id);
        free(v[i].proto);
        free(v[i].host_ip);
        free(v[i].ctr_ip);
    }
    free(v);
}

int ks_netdb_port_list(struct ks_db *db, const char *container_id, struct ks_net_port_record **ret,
                       size_t *ret_n, struct ks_error **err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = prep(db,
                 container_id ? "SELECT container_id, proto, host_ip, ctr_ip, host_port, ctr_port "
                                "FROM ports WHERE container_id = ?1 ORDER BY ctr_port, proto, "
                                "host_ip"
                              : "SELECT container_id, proto, host_ip, ctr_ip, host_port, ctr_port "
                                "FROM ports ORDER BY container_id",
                 &container_id, container_id ? 1 : 0, &st, err);
    if (r < 0)
        return r;
    size_t n = 0;
    struct ks_net_port_record *v = NULL;
    while ((r = ks_db_step(db, st, "list ports", err)) > 0) {
        struct ks_net_port_record *nv = realloc(v, (n + 1) * sizeof(*v));
        if (nv == NULL) {
            r = ks_error_set(err, ENOMEM, "list ports");
            break;
        }
        v = nv;
        bool oom = false;
        struct ks_net_port_record *p = &v[n++];
        p->container_id = col(st, 0, &oom);
        p->proto = col(st, 1, &oom);
        p->host_ip = col(st, 2, &oom);
        p->ctr_ip = col(st, 3, &oom);
        p->host_port = (unsigned)sqlite3_column_int(st, 4);
        p->ctr_port = (unsigned)sqlite3_column_int(st, 5);
        if (oom) {
            r = ks_error_set(err, ENOMEM, "list ports");
            break;
        }
    }
    if (r < 0) {
        ks_net_port_records_free(v, n);
        return r;
    }
    *ret = v;
    *ret_n = n;
    return 0;
}
