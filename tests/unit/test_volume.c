/* The volume module's pure parts: -v and --mount parsing with Docker's rules and messages,
 * volume names, local driver options, the store's records on disk, copy-up, and the OCI
 * mounts made from a container's mount points. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "base/fs.h"
#include "base/json.h"
#include "tap.h"
#include "volume/volume.h"

static void test_names(void)
{
    tap_ok(ks_volume_name_valid("data"), "a plain name is valid");
    tap_ok(ks_volume_name_valid("a1_b.c-d"), "_ . - after the first character");
    tap_ok(!ks_volume_name_valid("a"), "one character is too short");
    tap_ok(!ks_volume_name_valid("_data"), "a leading _ is refused");
    tap_ok(!ks_volume_name_valid("da/ta"), "a slash is refused");
    tap_ok(!ks_volume_name_valid(".."), "dots only are refused");
    tap_ok(!ks_volume_name_valid(""), "empty is refused");
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    tap_ok(!ks_volume_name_valid(longname), "more than 255 characters are refused");
}

static void test_parse_volume(void)
{
    struct ks_mount_spec s;
    struct ks_error *e = NULL;
    tap_ok(ks_mount_spec_parse_volume("/data", &s, &e) == 0 && s.type == KS_MOUNT_VOLUME &&
               s.source == NULL && strcmp(s.target, "/data") == 0 && !s.readonly,
           "-v /data is an anonymous volume");
    ks_mount_spec_clear(&s);
    tap_ok(ks_mount_spec_parse_volume("/data:ro", &s, &e) == 0 && s.source == NULL && s.readonly,
           "-v /data:ro is an anonymous read-only volume");
    ks_mount_spec_clear(&s);
    tap_ok(ks_mount_spec_parse_volume("name:/x:ro,nocopy", &s, &e) == 0 &&
               s.type == KS_MOUNT_VOLUME && strcmp(s.source, "name") == 0 && s.readonly &&
               s.nocopy && strcmp(s.mode, "ro,nocopy") == 0,
           "named volume with ro,nocopy");
    ks_mount_spec_clear(&s);
    tap_ok(ks_mount_spec_parse_volume("/host:/ctr:rw,rshared,Z", &s, &e) == 0 &&
               s.type == KS_MOUNT_BIND && strcmp(s.source, "/host") == 0 &&
               strcmp(s.propagation, "rshared") == 0 && !s.readonly,
           "bind with rw, rshared and Z");
    ks_mount_spec_clear(&s);
    static const struct {
        const char *spec, *msg;
    } bad[] = {
        {"", "invalid volume specification"},
        {"a:b:c:d", "invalid volume specification"},
        {"/h:/c:ro,rw", "invalid mode: ro,rw"},
        {"/h:/c:bogus", "invalid mode: bogus"},
        {"name:/c:rshared", "invalid mode: rshared"},
        {"/h:/c:nocopy", "invalid mode: nocopy"},
        {"/h:rel", "mount path must be absolute"},
        {"/h:/", "destination can't be '/'"},
        {"na/me:/c", "includes invalid characters"},
        {"x:/c", "includes invalid characters for a local volume name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = ks_mount_spec_parse_volume(bad[i].spec, &s, &e);
        if (!tap_ok(r < 0 && e && strstr(e->msg, bad[i].msg), "-v '%s' refused", bad[i].spec))
            tap_diag("  got %d: %s", r, e ? e->msg : "(none)");
        ks_error_free(e);
        e = NULL;
    }
}

static void test_parse_mount(void)
{
    struct ks_mount_spec s;
    struct ks_error *e = NULL;
    tap_ok(ks_mount_spec_parse_mount("type=bind,source=/h,target=/c,readonly,bind-propagation="
                                     "rslave",
                                     &s, &e) == 0 &&
               s.type == KS_MOUNT_BIND && s.readonly && s.from_mount &&
               strcmp(s.propagation, "rslave") == 0,
           "--mount bind with readonly and propagation");
    json_object *j = ks_mount_spec_to_json(&s);
    TAP_EQ_STR(ks_json_str(ks_json_get(j, "BindOptions"), "Propagation"), "rslave",
               "stored as Docker's BindOptions.Propagation");
    struct ks_mount_spec back;
    tap_ok(ks_mount_spec_from_json(j, &back, &e) == 0 && back.type == KS_MOUNT_BIND &&
               back.readonly && strcmp(back.source, "/h") == 0 && strcmp(back.target, "/c") == 0,
           "the stored entry reads back");
    ks_mount_spec_clear(&back);
    json_object_put(j);
    ks_mount_spec_clear(&s);

    tap_ok(ks_mount_spec_parse_mount("src=v1,dst=/d,volume-nocopy,volume-opt=type=tmpfs,"
                                     "volume-label=a=b,ro=false",
                                     &s, &e) == 0 &&
               s.type == KS_MOUNT_VOLUME && s.nocopy && !s.readonly &&
               strcmp(ks_json_str(s.options, "type"), "tmpfs") == 0 &&
               strcmp(ks_json_str(s.labels, "a"), "b") == 0,
           "--mount volume (the default type) with nocopy, an option and a label");
    ks_mount_spec_clear(&s);
    tap_ok(ks_mount_spec_parse_mount("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770", &s,
                                     &e) == 0 &&
               s.type == KS_MOUNT_TMPFS && s.tmpfs_size == 64 << 20 && s.tmpfs_mode == 01770,
           "--mount tmpfs with size and mode");
    ks_mount_spec_clear(&s);
    tap_ok(ks_mount_spec_parse_mount("type=volume,target=/x", &s, &e) == 0 && s.source == NULL,
           "--mount volume without source is anonymous");
    ks_mount_spec_clear(&s);

    static const struct {
        const char *csv, *msg;
    } bad[] = {
        {"type=bind,target=/c", "field Source must not be empty"},
        {"type=bind,source=/h", "field Target must not be empty"},
        {"type=tmpfs,source=x,target=/t", "field Source must not be specified"},
        {"type=bind,source=/h,target=/c,volume-nocopy", "field VolumeOptions must not be"},
        {"type=volume,target=/c,bind-propagation=shared", "field BindOptions must not be"},
        {"type=nfs,target=/c", "invalid mount type"},
        {"type=bind,source=/h,target=/c,bogus=1", "unexpected key 'bogus'"},
        {"type=bind,source=/h,target=/c,readonly=maybe", "invalid value for readonly"},
        {"type=volume,target=/c,volume-driver=nfs", "plugin \"nfs\" not found"},
        {"type=tmpfs,target=/t,tmpfs-mode=999", "invalid value for tmpfs-mode"},
        {"type=volume,target=/c,volume-opt=bogus=1", "invalid option key"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = ks_mount_spec_parse_mount(bad[i].csv, &s, &e);
        if (!tap_ok(r < 0 && e && strstr(e->msg, bad[i].msg), "--mount '%s' refused", bad[i].csv))
            tap_diag("  got %d: %s", r, e ? e->msg : "(none)");
        ks_error_free(e);
        e = NULL;
    }
}

static json_object *parse(const char *s)
{
    json_object *o = NULL;
    if (ks_json_parse(s, strlen(s), &o, NULL) < 0)
        abort();
    return o;
}

static void test_options(void)
{
    struct ks_error *e = NULL;
    static const struct {
        const char *json;
        bool ok;
    } cases[] = {
        {"{}", true},
        {"{\"type\":\"tmpfs\",\"device\":\"tmpfs\",\"o\":\"size=1m\"}", true},
        {"{\"type\":\"tmpfs\"}", true},
        {"{\"type\":\"none\",\"o\":\"bind\",\"device\":\"/srv\"}", true},
        {"{\"type\":\"none\",\"o\":\"bind\",\"device\":\"rel\"}", false},
        {"{\"type\":\"ext4\"}", false},
        {"{\"device\":\"/dev/x\"}", false},
        {"{\"size\":\"1\"}", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *o = parse(cases[i].json);
        int r = ks_volume_options_check(o, &e);
        tap_ok((r == 0) == cases[i].ok, "options %s %s", cases[i].json,
               cases[i].ok ? "accepted" : "refused");
        ks_error_free(e);
        e = NULL;
        json_object_put(o);
    }
}

static void test_store(const char *root)
{
    struct ks_volumes *vs = NULL;
    struct ks_error *e = NULL;
    tap_ok(ks_volumes_open(root, &vs, &e) == 0, "open the volumes");
    int lock = ks_volumes_lock(vs, &e);
    tap_ok(lock >= 0, "take the lock");
    json_object *labels = parse("{\"k\":\"v\"}");
    struct ks_volume_create_opts o = {.name = "data", .labels = labels};
    struct ks_volume *v = NULL;
    bool created = false;
    tap_ok(ks_volume_create(vs, &o, &v, &created, &e) == 0 && created, "create a volume");
    json_object *j = ks_volume_json(v);
    TAP_EQ_STR(ks_json_str(j, "Name"), "data", "inspect Name");
    TAP_EQ_STR(ks_json_str(j, "Driver"), "local", "inspect Driver");
    TAP_EQ_STR(ks_json_str(j, "Scope"), "local", "inspect Scope");
    TAP_EQ_STR(ks_json_str(ks_json_get(j, "Labels"), "k"), "v", "inspect Labels");
    tap_ok(ks_json_get(j, "Options") == NULL, "no options: null as Docker");
    json_object_put(j);
    ks_volume_free(v);
    v = NULL;
    tap_ok(ks_volume_create(vs, &o, &v, &created, &e) == 0 && !created,
           "creating it again returns the existing one");
    ks_volume_free(v);
    v = NULL;
    struct ks_volume_create_opts anon = {0};
    tap_ok(ks_volume_create(vs, &anon, &v, &created, &e) == 0 && created && v->anonymous &&
               strlen(v->name) == 64 && ks_json_get(v->labels, "com.docker.volume.anonymous"),
           "an anonymous volume has a 64-hex name and Docker's label");
    char *anon_name = strdup(v->name);
    ks_volume_free(v);
    v = NULL;
    struct ks_volume **list = NULL;
    size_t n = 0;
    tap_ok(ks_volume_list(vs, &list, &n, &e) == 0 && n == 2, "two volumes listed");
    /* The anonymous volume's name is random: "data" may come first or second. */
    tap_ok(n == 2 && strcmp(list[0]->name, list[1]->name) < 0 &&
               (strcmp(list[0]->name, "data") == 0 || strcmp(list[1]->name, "data") == 0),
           "sorted by name");
    ks_volume_list_free(list, n);
    tap_ok(ks_volume_remove(vs, anon_name, &e) == 0, "remove a volume");
    int r = ks_volume_get(vs, anon_name, &v, &e);
    tap_ok(r == -ENOENT && e && strstr(e->msg, "no such volume"), "it is gone");
    ks_error_free(e);
    e = NULL;
    struct ks_volume_create_opts badname = {.name = "x/y"};
    tap_ok(ks_volume_create(vs, &badname, NULL, NULL, &e) < 0, "an invalid name is refused");
    ks_error_free(e);
    free(anon_name);
    json_object_put(labels);
    close(lock);
    ks_volumes_free(vs);
}

static void test_copy(const char *dir)
{
    char src[4096], dst[4096];
    snprintf(src, sizeof(src), "%s/src", dir);
    snprintf(dst, sizeof(dst), "%s/dst", dir);
    mkdir(src, 0750);
    mkdir(dst, 0755);
    char p[4200];
    snprintf(p, sizeof(p), "%s/sub", src);
    mkdir(p, 0711);
    snprintf(p, sizeof(p), "%s/sub/file", src);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    (void)!write(fd, "hello", 5);
    close(fd);
    (void)!chown(p, 1234, 5678);
    bool have_xattr = setxattr(p, "user.test", "v", 1, 0) == 0;
    snprintf(p, sizeof(p), "%s/link", src);
    (void)!symlink("sub/file", p);
    int s = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int d = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    tap_ok(ks_volume_dir_empty(d), "the target starts empty");
    struct ks_error *e = NULL;
    tap_ok(ks_volume_copy_tree(s, d, &e) == 0, "copy the tree");
    tap_ok(!ks_volume_dir_empty(d), "the target is filled");
    struct stat st;
    snprintf(p, sizeof(p), "%s/sub/file", dst);
    tap_ok(stat(p, &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678 &&
               (st.st_mode & 07777) == 0640 && st.st_size == 5,
           "owner, mode and content kept");
    char val[8] = "";
    if (have_xattr)
        tap_ok(getxattr(p, "user.test", val, sizeof(val)) == 1 && val[0] == 'v', "xattr kept");
    else
        tap_skip("no user xattrs here", "xattr kept");
    snprintf(p, sizeof(p), "%s/sub", dst);
    tap_ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0711, "directory mode kept");
    snprintf(p, sizeof(p), "%s/link", dst);
    char t[64] = "";
    tap_ok(readlink(p, t, sizeof(t) - 1) > 0 && strcmp(t, "sub/file") == 0, "symlink kept");
    tap_ok(stat(dst, &st) == 0 && (st.st_mode & 07777) == 0750, "the root takes the mode");
    close(s);
    close(d);
}

static void test_spec(void)
{
    json_object *config = parse(
        "{\"MountPoints\":["
        "{\"Type\":\"volume\",\"Name\":\"v\",\"Source\":\"/r/volumes/v/_data\","
        "\"Destination\":\"/a/b\",\"Driver\":\"local\",\"Mode\":\"\",\"RW\":true,"
        "\"Propagation\":\"\"},"
        "{\"Type\":\"bind\",\"Source\":\"/h\",\"Destination\":\"/a\",\"Mode\":\"ro\",\"RW\":false,"
        "\"Propagation\":\"rshared\"},"
        "{\"Type\":\"tmpfs\",\"Source\":\"\",\"Destination\":\"/t\",\"Mode\":\"\",\"RW\":true,"
        "\"Propagation\":\"\",\"TmpfsOptions\":{\"SizeBytes\":1024,\"Mode\":448}}]}");
    json_object *spec = parse("{\"mounts\":[]}");
    struct ks_error *e = NULL;
    tap_ok(ks_engine_volumes_spec(spec, config, &e) == 0, "OCI mounts made");
    json_object *m = ks_json_get(spec, "mounts");
    TAP_EQ_INT(json_object_array_length(m), 3, "three mounts");
    TAP_EQ_STR(ks_json_str(json_object_array_get_idx(m, 0), "destination"), "/a",
               "the parent comes first");
    TAP_EQ_STR(ks_json_plain(ks_json_get(json_object_array_get_idx(m, 0), "options")),
               "[\"rbind\",\"rshared\",\"ro\"]", "bind options: rbind, propagation, ro");
    TAP_EQ_STR(ks_json_plain(ks_json_get(json_object_array_get_idx(m, 2), "options")),
               "[\"rbind\",\"rprivate\",\"rw\"]", "a volume is rprivate by default");
    json_object *t = json_object_array_get_idx(m, 1);
    TAP_EQ_STR(ks_json_str(t, "type"), "tmpfs", "tmpfs mount");
    TAP_EQ_STR(ks_json_plain(ks_json_get(t, "options")),
               "[\"nosuid\",\"nodev\",\"noexec\",\"size=1024\",\"mode=700\",\"rw\"]",
               "tmpfs options with size and octal mode");
    json_object *ins = ks_engine_volumes_inspect(config);
    json_object *first = json_object_array_get_idx(ins, 0);
    tap_ok(ks_json_get(first, "Name") && ks_json_get(first, "Driver") &&
               ks_json_get(json_object_array_get_idx(ins, 2), "TmpfsOptions") == NULL,
           "inspect shows Docker's keys only");
    tap_ok(ks_engine_volumes_match(config, "v") && ks_engine_volumes_match(config, "/a") &&
               !ks_engine_volumes_match(config, "w"),
           "ps --filter volume= matches a name or a destination");
    json_object_put(ins);
    json_object_put(spec);
    json_object_put(config);
    json_object *badc = parse("{\"MountPoints\":[{\"Type\":\"bind\",\"Source\":\"rel\","
                              "\"Destination\":\"/x\"}]}");
    spec = parse("{\"mounts\":[]}");
    tap_ok(ks_engine_volumes_spec(spec, badc, &e) < 0, "a relative source is refused");
    ks_error_free(e);
    json_object_put(spec);
    json_object_put(badc);
}

int main(void)
{
    tap_plan_auto();
    char dir[] = "/tmp/kiste-test-volume-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    test_names();
    test_parse_volume();
    test_parse_mount();
    test_options();
    test_store(dir);
    test_copy(dir);
    test_spec();
    ks_rm_rf_at(AT_FDCWD, dir, NULL);
    return tap_done();
}
