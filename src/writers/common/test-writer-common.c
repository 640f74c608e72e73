/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit tests of src/writers/common: the option and config grammar every
 * application writer shares (command line over file, key by key; repeatable
 * options replaced as a whole; errors naming file, line and key), the
 * reconnecting session's backoff, the /proc scans PreRestore relies on, and
 * the path helpers.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>

#include <cmocka.h>

#include "basic/time-util.h"
#include "common/db-link.h"
#include "common/proc-util.h"
#include "common/writer-app.h"

struct test_app {
        char *conninfo;
        char *db[8];
        size_t n_db;
        bool flag;
};

static const struct writer_app_option test_options[] = {
        { .name = "conninfo", .arg = "STR", .help = "how to reach the server", .multiple = false },
        { .name = "database", .arg = "PATH", .help = "a database", .multiple = true },
        { .name = "fancy-flag", .arg = NULL, .help = "a flag", .multiple = false },
        { .name = NULL },
};

static int test_set(void *userdata, const char *key, const char *value, char *err, size_t errlen)
{
        struct test_app *t = userdata;

        if (streq(key, "conninfo")) {
                if (streq(value, "bad")) {
                        snprintf(err, errlen, "conninfo is bad");
                        return -EINVAL;
                }
                free(t->conninfo);
                t->conninfo = strdup(value);
        } else if (streq(key, "database")) {
                assert_true(t->n_db < 8);
                t->db[t->n_db++] = strdup(value);
        } else if (streq(key, "fancy-flag"))
                t->flag = true;
        else
                fail_msg("unexpected key %s", key);
        return 0;
}

static void test_app_done(struct test_app *t)
{
        free(t->conninfo);
        for (size_t i = 0; i < t->n_db; i++)
                free(t->db[i]);
        *t = (struct test_app){ 0 };
}

static void app_init(struct writer_app *app, struct test_app *t)
{
        *app = (struct writer_app){ .program = "test-writer", .default_name = "Test Writer",
                                    .summary = "A test.", .options = test_options, .set = test_set,
                                    .userdata = t };
}

/* Runs writer_app_parse on a NULL-terminated list, capturing stdout and stderr. */
static int parse(struct writer_app *app, char *out, size_t outlen, ...)
{
        char *argv[32] = { "test-writer" };
        int argc = 1, exit_code = -1, r, saved_out, saved_err, fd;
        ssize_t n;
        va_list ap;

        va_start(ap, outlen);
        for (char *a; (a = va_arg(ap, char *));)
                argv[argc++] = a;
        va_end(ap);

        fflush(stdout);
        fflush(stderr);
        fd = memfd_create("out", MFD_CLOEXEC);
        assert_true(fd >= 0);
        saved_out = dup(1);
        saved_err = dup(2);
        dup2(fd, 1);
        dup2(fd, 2);
        r = writer_app_parse(app, argc, argv, &exit_code);
        fflush(stdout);
        fflush(stderr);
        dup2(saved_out, 1);
        dup2(saved_err, 2);
        close(saved_out);
        close(saved_err);
        n = pread(fd, out, outlen - 1, 0);
        close(fd);
        out[n > 0 ? n : 0] = 0;
        return r < 0 ? exit_code : -1;
}

static char *write_file(const char *text)
{
        static char path[64];
        int fd;

        snprintf(path, sizeof(path), "/tmp/test-writer-common.XXXXXX");
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
        return path;
}

static void test_cli(void **state)
{
        struct writer_app app;
        struct test_app t = { 0 };
        char out[8192];

        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), "--name", "PG", "--socket", "/x.sock", "--freeze-timeout",
                               "2500", "--no-reconnect", "--conninfo", "host=/tmp", "--database", "a", "--database",
                               "b", "--fancy-flag", NULL),
                         -1);
        assert_string_equal(app.s.name, "PG");
        assert_string_equal(app.s.socket, "/x.sock");
        assert_int_equal(app.s.freeze_timeout_ms, 2500);
        assert_true(app.s.no_reconnect);
        assert_string_equal(t.conninfo, "host=/tmp");
        assert_int_equal(t.n_db, 2);
        assert_string_equal(t.db[1], "b");
        assert_true(t.flag);
        writer_app_done(&app);
        test_app_done(&t);

        /* Defaults. */
        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), NULL), -1);
        assert_string_equal(app.s.name, "Test Writer");
        assert_null(app.s.socket);
        assert_int_equal(app.s.freeze_timeout_ms, 0);
        assert_false(app.s.no_reconnect);
        writer_app_done(&app);
        test_app_done(&t);
}

static void test_cli_errors(void **state)
{
        static const char *const bad[][3] = {
                { "--freeze-timeout", "0", "freeze timeout '0' is not a number of milliseconds" },
                { "--freeze-timeout", "3600001", "not a number of milliseconds in 1..3600000" },
                { "--freeze-timeout", "12x", "freeze timeout '12x'" },
                { "--freeze-timeout", "-5", "freeze timeout '-5'" },
                { "--name", "", "1 to 255 characters" },
                { "--conninfo", "bad", "--conninfo: conninfo is bad" },
                { "--bogus", NULL, "unknown option '--bogus'" },
                { "--conninfo", NULL, "option '--conninfo' needs an argument" },
                { "stray", NULL, "unexpected argument 'stray'" },
        };

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct writer_app app;
                struct test_app t = { 0 };
                char out[8192];

                app_init(&app, &t);
                assert_int_equal(parse(&app, out, sizeof(out), bad[i][0], bad[i][1], NULL), 2);
                if (!strstr(out, bad[i][2]))
                        fail_msg("case %zu: expected '%s' in: %s", i, bad[i][2], out);
                assert_non_null(strstr(out, "Try 'test-writer --help'"));
                writer_app_done(&app);
                test_app_done(&t);
        }
}

static void test_help(void **state)
{
        static const char *const lines[] = {
                "  --name NAME ", "  --socket PATH ", "  --freeze-timeout MS ", "  --config FILE ",
                "  --no-reconnect ", "  --verbose ", "  --conninfo STR ", "  --database PATH... ",
                "  --fancy-flag ", "  --help ",
        };
        struct writer_app app;
        struct test_app t = { 0 };
        char out[8192];

        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), "--help", NULL), 0);
        for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
                char want[64];
                snprintf(want, sizeof(want), "\n%s", lines[i]);
                if (!strstr(out, want))
                        fail_msg("--help lacks a line starting '%s':\n%s", lines[i], out);
        }
        assert_non_null(strstr(out, "(default: Test Writer)"));
        writer_app_done(&app);
        test_app_done(&t);
}

static void test_config(void **state)
{
        struct writer_app app;
        struct test_app t = { 0 };
        char out[8192];
        char *path = write_file("# comment\n[writer]\nname = From File\nfreeze_timeout = 7000\n"
                                "no-reconnect = yes\nconninfo = dbname=x\ndatabase = /f1\ndatabase = /f2\n");

        /* The file alone. */
        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), "--config", path, NULL), -1);
        assert_string_equal(app.s.name, "From File");
        assert_int_equal(app.s.freeze_timeout_ms, 7000);
        assert_true(app.s.no_reconnect);
        assert_string_equal(app.s.config, path);
        assert_string_equal(t.conninfo, "dbname=x");
        assert_int_equal(t.n_db, 2);
        writer_app_done(&app);
        test_app_done(&t);

        /* The command line wins key by key; its --database list replaces the file's. */
        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), "--freeze-timeout", "900", "--config", path, "--database",
                               "/cli", NULL),
                         -1);
        assert_string_equal(app.s.name, "From File");
        assert_int_equal(app.s.freeze_timeout_ms, 900);
        assert_int_equal(t.n_db, 1);
        assert_string_equal(t.db[0], "/cli");
        writer_app_done(&app);
        test_app_done(&t);
        unlink(path);
}

static void test_config_errors(void **state)
{
        static const char *const bad[][2] = {
                { "[writer]\nname = x\nbogus = 1\n", ":3: unknown key 'bogus'" },
                { "[other]\nname = x\n", ":2: unknown section [other]" },
                { "[writer]\nfreeze_timeout = soon\n", "freeze-timeout: freeze timeout 'soon'" },
                { "[writer]\nno_reconnect = maybe\n", "no_reconnect 'maybe' is not a boolean" },
                { "[writer]\nconninfo = bad\n", "conninfo: conninfo is bad" },
                { "[writer]\nconfig = /etc/x\n", ":2: unknown key 'config'" },
                { "[writer]\nname\n", ":2: " },
        };

        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
                struct writer_app app;
                struct test_app t = { 0 };
                char out[8192], *path = write_file(bad[i][0]);

                app_init(&app, &t);
                assert_int_equal(parse(&app, out, sizeof(out), "--config", path, NULL), 2);
                if (!strstr(out, bad[i][1]) || !strstr(out, path))
                        fail_msg("case %zu: expected '%s' and the file name in: %s", i, bad[i][1], out);
                writer_app_done(&app);
                test_app_done(&t);
                unlink(path);
        }

        struct writer_app app;
        struct test_app t = { 0 };
        char out[8192];
        app_init(&app, &t);
        assert_int_equal(parse(&app, out, sizeof(out), "--config", "/nonexistent/x.conf", NULL), 2);
        assert_non_null(strstr(out, "cannot read config file /nonexistent/x.conf: No such file or directory"));
        writer_app_done(&app);
}

static void test_parsers(void **state)
{
        uint32_t ms;
        bool b;

        assert_int_equal(writer_parse_ms("1", &ms), 0);
        assert_int_equal(ms, 1);
        assert_int_equal(writer_parse_ms("3600000", &ms), 0);
        assert_int_equal(writer_parse_ms("3600001", &ms), -EINVAL);
        assert_int_equal(writer_parse_ms("", &ms), -EINVAL);
        assert_int_equal(writer_parse_ms(" 5", &ms), -EINVAL);
        assert_int_equal(writer_parse_ms("+5", &ms), -EINVAL);
        assert_int_equal(writer_parse_ms("99999999999999999999", &ms), -EINVAL);
        assert_int_equal(writer_parse_bool("Yes", &b), 0);
        assert_true(b);
        assert_int_equal(writer_parse_bool("off", &b), 0);
        assert_false(b);
        assert_int_equal(writer_parse_bool("2", &b), -EINVAL);
}

static void test_desc(void **state)
{
        struct writer_desc a = { 0 }, b = { 0 };

        for (int k = 0; k < 2; k++) {
                struct writer_desc *d = k ? &b : &a;
                int c;
                assert_int_equal(writer_desc_add_volume(d, "/srv/pg"), 0);
                assert_int_equal(writer_desc_add_volume(d, "/srv/pg"), 0); /* no duplicates */
                c = writer_desc_add_component(d, VSS_CT_DATABASE, "", "cluster", "PostgreSQL");
                assert_int_equal(c, 0);
                assert_int_equal(writer_desc_add_file(d, c, "/srv/pg", "*", true), 0);
        }
        assert_int_equal(a.n_volumes, 1);
        assert_null(a.volumes[1]);
        assert_true(writer_desc_equal(&a, &b));
        assert_int_equal(writer_desc_add_volume(&b, "/srv/wal"), 0);
        assert_false(writer_desc_equal(&a, &b));
        writer_desc_done(&a);
        writer_desc_done(&b);
}

/* ---- db_link ---------------------------------------------------------------------------- */

struct fake_db {
        int connects;
        bool server_up;
        bool open;
};

static int fake_connect(void *userdata, char *err, size_t errlen)
{
        struct fake_db *f = userdata;

        f->connects++;
        if (!f->server_up) {
                snprintf(err, errlen, "connection refused");
                return -ECONNREFUSED;
        }
        f->open = true;
        return 0;
}

static void fake_disconnect(void *userdata)
{
        ((struct fake_db *)userdata)->open = false;
}

static bool fake_alive(void *userdata)
{
        struct fake_db *f = userdata;
        return f->open && f->server_up;
}

static void test_db_link(void **state)
{
        struct fake_db f = { .server_up = false };
        struct db_link l = { .what = "the fake server", .connect = fake_connect, .disconnect = fake_disconnect,
                             .alive = fake_alive, .userdata = &f };
        uint64_t t0;
        int n;

        assert_false(db_link_ensure(&l, true));
        assert_int_equal(f.connects, 1);
        assert_string_equal(db_link_error(&l), "connection refused");
        /* Within the backoff, tick does not try again; ensure(now) does. */
        assert_false(db_link_tick(&l));
        assert_int_equal(f.connects, 1);
        assert_false(db_link_ensure(&l, true));
        assert_int_equal(f.connects, 2);

        /* The backoff doubles: in 1 s of ticks, a handful of attempts, not hundreds. */
        t0 = clock_monotonic_us();
        while (clock_monotonic_us() - t0 < 1000000) {
                db_link_tick(&l);
                usleep(5000);
        }
        n = f.connects - 2;
        if (n < 2 || n > 5)
                fail_msg("%d attempts in 1 s with a backoff of 100 ms doubling", n);

        /* The server comes back: at most the current backoff (<= 5 s) later we are up. */
        f.server_up = true;
        t0 = clock_monotonic_us();
        while (!db_link_tick(&l) && clock_monotonic_us() - t0 < 6000000)
                usleep(5000);
        assert_true(l.up);
        assert_true(f.open);
        assert_string_equal(db_link_error(&l), "");
        assert_false(db_link_tick(&l)); /* already up: nothing new */

        /* The server restarts: the loss is seen, tried again at once, and after the first
         * backoff step (100 ms) the session is back. */
        f.server_up = false;
        n = f.connects;
        assert_false(db_link_tick(&l));
        assert_false(f.open);
        assert_int_equal(f.connects, n + 1);
        f.server_up = true;
        t0 = clock_monotonic_us();
        while (!db_link_tick(&l))
                usleep(5000);
        if (clock_monotonic_us() - t0 > 150000)
                fail_msg("reconnected %llu ms after the server came back",
                         (unsigned long long)(clock_monotonic_us() - t0) / 1000);

        db_link_lost(&l, "query failed");
        assert_false(f.open);
        assert_true(db_link_ensure(&l, false)); /* no backoff after a loss */
        db_link_close(&l);
        assert_false(f.open);
}

/* ---- /proc and paths ---------------------------------------------------------------------- */

static void test_proc(void **state)
{
        char dir[] = "/tmp/test-writer-common-dir.XXXXXX", file[128], comm[16] = "";
        int pipefd[2], fd;
        pid_t child;
        char c;

        assert_non_null(mkdtemp(dir));
        snprintf(file, sizeof(file), "%s/db", dir);
        fd = open(file, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        close(fd);

        assert_int_equal(proc_find_by_cwd(dir, NULL, NULL), 0);
        assert_int_equal(proc_find_open_file(file, NULL), 0);
        /* Our own open file does not count. */
        fd = open(file, O_RDONLY | O_CLOEXEC);
        assert_int_equal(proc_find_open_file(file, NULL), 0);
        close(fd);

        assert_int_equal(pipe(pipefd), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                int f = open(file, O_RDONLY);
                if (f < 0 || chdir(dir) < 0)
                        _exit(1);
                (void)!write(pipefd[1], "x", 1);
                pause();
                _exit(0);
        }
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        assert_int_equal(proc_find_by_cwd(dir, NULL, comm), child);
        assert_string_equal(comm, "test-writer-com");   /* comm is cut at 15 characters */
        {
                const char *const named[] = { "postgres", NULL }, *const ours[] = { "test-writer-com", NULL };
                assert_int_equal(proc_find_by_cwd(dir, named, NULL), 0);
                assert_int_equal(proc_find_by_cwd(dir, ours, NULL), child);
                assert_true(proc_is_running(child, ours));
                assert_false(proc_is_running(child, named));
        }
        assert_int_equal(proc_find_open_file(file, NULL), child);
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        assert_int_equal(proc_find_by_cwd(dir, NULL, NULL), 0);
        assert_false(proc_is_running(child, NULL));
        close(pipefd[0]);
        close(pipefd[1]);
        unlink(file);
        rmdir(dir);
}

static void test_paths(void **state)
{
        char *s;

        assert_true(path_is_under("/srv/pg", "/srv/pg"));
        assert_true(path_is_under("/srv/pg/base", "/srv/pg"));
        assert_false(path_is_under("/srv/pgx", "/srv/pg"));
        assert_false(path_is_under("/srv", "/srv/pg"));
        assert_true(path_is_under("/anything", "/"));
        s = path_join("/a/", "b");
        assert_string_equal(s, "/a/b");
        free(s);
        s = path_join("/a", "b");
        assert_string_equal(s, "/a/b");
        free(s);
        s = path_real_dirname("/tmp//x.db");
        assert_string_equal(s, "/tmp");
        free(s);
        s = path_real_dirname("/x.db");
        assert_string_equal(s, "/");
        free(s);
        assert_null(path_real_dirname("/nonexistent-dir-xyz/x.db"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cli),
                cmocka_unit_test(test_cli_errors),
                cmocka_unit_test(test_help),
                cmocka_unit_test(test_config),
                cmocka_unit_test(test_config_errors),
                cmocka_unit_test(test_parsers),
                cmocka_unit_test(test_desc),
                cmocka_unit_test(test_db_link),
                cmocka_unit_test(test_proc),
                cmocka_unit_test(test_paths),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
