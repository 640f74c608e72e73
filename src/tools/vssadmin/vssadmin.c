/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vssadmin: the administrative command-line tool, with the commands and the
 * output layouts of Windows vssadmin 1.1 (vss-facts 6.1) on Linux names.
 *
 * The command line is parsed once for every command (both /opt=value and
 * --opt=value dialects, tools/common/args.c); the command words select an
 * entry of the verbs table, which also says which options the command
 * accepts and which it requires, so a missing or misplaced option is reported
 * before anything is sent to vssd.  Most commands are one admin method call
 * (docs/protocol.md) whose result is printed in the Windows layout, or with
 * --json as the daemon sent it; `create shadow` runs a requester session
 * through libvss.
 */

#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "tools/vssadmin/vssadmin.h"

#define BANNER_LINE "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool"

static const struct tool_option options[_OPT_MAX] = {
        [OPT_FOR]       = { "for", NULL, TOOL_OPT_VALUE, "VOL", NULL },
        [OPT_ON]        = { "on", NULL, TOOL_OPT_VALUE, "VOL", NULL },
        [OPT_SHADOW]    = { "shadow", NULL, TOOL_OPT_VALUE, "ID", NULL },
        [OPT_SET]       = { "set", NULL, TOOL_OPT_VALUE, "ID", NULL },
        [OPT_OLDEST]    = { "oldest", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_ALL]       = { "all", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_QUIET]     = { "quiet", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_MAXSIZE]   = { "maxsize", NULL, TOOL_OPT_VALUE, "SIZE", NULL },
        [OPT_AUTORETRY] = { "autoretry", NULL, TOOL_OPT_VALUE, "MINUTES", NULL },
        [OPT_AT]        = { "at", NULL, TOOL_OPT_VALUE, "DIR", NULL },
        [OPT_NAME]      = { "name", NULL, TOOL_OPT_VALUE, "NAME", NULL },
        [OPT_SIZE]      = { "size", NULL, TOOL_OPT_VALUE, "SIZE", NULL },
        [OPT_IMAGE]     = { "image", NULL, TOOL_OPT_VALUE, "PATH", NULL },
        [OPT_DEVICE]    = { "device", NULL, TOOL_OPT_VALUE, "DEV", NULL },
        [OPT_FS]        = { "fs", NULL, TOOL_OPT_VALUE, "ext4|xfs", NULL },
        [OPT_MOUNT]     = { "mount", NULL, TOOL_OPT_VALUE, "DIR", NULL },
        [OPT_JSON]      = { "json", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_CLUSTER]   = { "cluster", NULL, TOOL_OPT_FLAG, NULL, NULL },
        [OPT_SOCKET]    = { "socket", NULL, TOOL_OPT_VALUE, "PATH",
                            "vssd's socket (default $VSS_SOCKET, else /run/openvss/vssd.sock)" },
        [OPT_HELP]      = { "help", "h", TOOL_OPT_FLAG, NULL, "print this help (also /? and -?)" },
};

#define O(x) (1u << (x))
/* Accepted by every command. */
#define O_GLOBAL (O(OPT_SOCKET) | O(OPT_HELP))

static const struct verb {
        const char *word1, *word2;
        int (*run)(struct vssadmin *va);
        unsigned allowed;       /* besides O_GLOBAL */
        unsigned required;
        const char *syntax;
        const char *help;
} verbs[] = {
        { "add", "previousversions", verb_add_previousversions, O(OPT_FOR) | O(OPT_AT), O(OPT_FOR),
          "/For=VOL [/At=DIR]", "Publish a volume's shadow copies as @GMT- previous versions" },
        { "add", "shadowstorage", verb_add_shadowstorage, O(OPT_FOR) | O(OPT_ON) | O(OPT_MAXSIZE),
          O(OPT_FOR) | O(OPT_ON), "/For=VOL /On=VOL [/MaxSize=SIZE]",
          "Add a new volume shadow copy storage association" },
        { "create", "shadow", verb_create_shadow, O(OPT_FOR) | O(OPT_AUTORETRY), O(OPT_FOR),
          "/For=VOL [/AutoRetry=MINUTES]", "Create a new volume shadow copy" },
        { "create", "volume", verb_create_volume,
          O(OPT_NAME) | O(OPT_SIZE) | O(OPT_IMAGE) | O(OPT_DEVICE) | O(OPT_FS) | O(OPT_MOUNT), O(OPT_NAME),
          "/Name=NAME [/Size=SIZE] [/Image=PATH | /Device=DEV] [/Fs=ext4|xfs] [/Mount=DIR]",
          "Create a copy-on-write volume served by openvss (an existing image or device without /Fs is adopted "
          "with its filesystem)" },
        { "delete", "previousversions", verb_delete_previousversions, O(OPT_FOR), O(OPT_FOR), "/For=VOL",
          "Stop publishing a volume's previous versions" },
        { "delete", "shadows", verb_delete_shadows,
          O(OPT_FOR) | O(OPT_OLDEST) | O(OPT_ALL) | O(OPT_SHADOW) | O(OPT_QUIET), 0,
          "/For=VOL [/Oldest | /All | /Shadow=ID] [/Quiet]", "Delete volume shadow copies" },
        { "delete", "shadowstorage", verb_delete_shadowstorage, O(OPT_FOR) | O(OPT_ON) | O(OPT_QUIET),
          O(OPT_FOR), "/For=VOL [/On=VOL] [/Quiet]",
          "Delete volume shadow copy storage associations" },
        { "delete", "volume", verb_delete_volume, O(OPT_NAME), O(OPT_NAME), "/Name=NAME",
          "Delete a copy-on-write volume served by openvss" },
        { "explain", NULL, NULL, 0, 0, "CODE", "Explain an error code (hex or name)" },
        { "expose", "shadow", verb_expose_shadow, O(OPT_SHADOW) | O(OPT_AT), O(OPT_SHADOW) | O(OPT_AT),
          "/Shadow=ID /At=DIR", "Mount a shadow copy read-only at a directory" },
        { "list", "events", verb_list_events, O(OPT_JSON), 0, "[--json]",
          "List the events logged by the shadow copy service" },
        { "list", "hosts", verb_list_hosts, O(OPT_JSON), 0, "[--json]",
          "List the hosts of this host's cluster (vssd.conf [cluster])" },
        { "list", "previousversions", verb_list_previousversions, O(OPT_FOR) | O(OPT_JSON), 0,
          "[/For=VOL] [--json]", "List the volumes whose previous versions are published" },
        { "list", "providers", verb_list_providers, O(OPT_JSON), 0, "[--json]",
          "List registered volume shadow copy providers" },
        { "list", "shadows", verb_list_shadows, O(OPT_FOR) | O(OPT_SHADOW) | O(OPT_SET) | O(OPT_JSON), 0,
          "[/For=VOL] [/Shadow=ID] [/Set=ID] [--json]", "List existing volume shadow copies" },
        { "list", "shadowstorage", verb_list_shadowstorage, O(OPT_FOR) | O(OPT_ON) | O(OPT_JSON), 0,
          "[/For=VOL] [/On=VOL] [--json]", "List volume shadow copy storage associations" },
        { "list", "volumes", verb_list_volumes, O(OPT_JSON), 0, "[--json]",
          "List volumes eligible for shadow copies" },
        { "list", "writers", verb_list_writers, O(OPT_CLUSTER) | O(OPT_JSON), 0, "[/Cluster] [--json]",
          "List subscribed volume shadow copy writers" },
        { "resize", "shadowstorage", verb_resize_shadowstorage, O(OPT_FOR) | O(OPT_ON) | O(OPT_MAXSIZE),
          O(OPT_FOR) | O(OPT_ON) | O(OPT_MAXSIZE), "/For=VOL /On=VOL /MaxSize=SIZE|UNBOUNDED|N%",
          "Resize a volume shadow copy storage association" },
        { "revert", "shadow", verb_revert_shadow, O(OPT_SHADOW) | O(OPT_QUIET), O(OPT_SHADOW), "/Shadow=ID [/Quiet]",
          "Revert a volume back to a specified shadow copy" },
        { "unexpose", "shadow", verb_unexpose_shadow, O(OPT_SHADOW), O(OPT_SHADOW), "/Shadow=ID",
          "Unmount an exposed shadow copy" },
};

static void print_banner(void)
{
        printf("%s\n(openvss %s)\n\n", BANNER_LINE, OPENVSS_VERSION);
}

static void print_commands(FILE *f)
{
        fputs("---- Commands Supported ----\n\n", f);
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
                char title[64];

                /* "List ShadowStorage" as Windows capitalises it. */
                snprintf(title, sizeof(title), "%c%s%s%c%s", toupper((unsigned char)verbs[i].word1[0]),
                         verbs[i].word1 + 1, verbs[i].word2 ? " " : "",
                         verbs[i].word2 ? toupper((unsigned char)verbs[i].word2[0]) : 0,
                         verbs[i].word2 ? verbs[i].word2 + 1 : "");
                if (verbs[i].word2 && strcasecmp(verbs[i].word2, "shadowstorage") == 0)
                        snprintf(title, sizeof(title), "%c%s ShadowStorage",
                                 toupper((unsigned char)verbs[i].word1[0]), verbs[i].word1 + 1);
                if (verbs[i].word2 && strcasecmp(verbs[i].word2, "previousversions") == 0)
                        snprintf(title, sizeof(title), "%c%s PreviousVersions",
                                 toupper((unsigned char)verbs[i].word1[0]), verbs[i].word1 + 1);
                fprintf(f, "%-21s - %s\n", title, verbs[i].help);
        }
}

/* One line per command with exactly the options the verbs table lets it take
 * (required ones without brackets), so --help cannot miss one. */
static void print_usage(void)
{
        printf("Usage: vssadmin COMMAND [OPTIONS] [--socket PATH]\n\n");
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
                printf("  vssadmin %s%s%s", verbs[i].word1, verbs[i].word2 ? " " : "", verbs[i].word2 ?: "");
                if (!verbs[i].allowed)
                        printf(" %s", verbs[i].syntax);         /* positional arguments only */
                for (unsigned o = 0; o < _OPT_MAX; o++) {
                        bool req = verbs[i].required & O(o);

                        if (!(verbs[i].allowed & O(o)))
                                continue;
                        printf(" %s%s%s%s%s%s", req ? "" : "[", o == OPT_JSON ? "--" : "/", options[o].name,
                               options[o].type == TOOL_OPT_FLAG ? "" : "=",
                               options[o].type == TOOL_OPT_FLAG ? "" : options[o].metavar ?: "VALUE", req ? "" : "]");
                }
                putchar('\n');
        }
        printf("\nOptions of every command:\n");
        tool_print_options(stdout, options, _OPT_MAX, O_GLOBAL);
        printf("\nOptions take the Windows form /Opt=VALUE or the Linux form --opt=VALUE / --opt VALUE;\n"
               "names are case-insensitive. SIZE: N[B|KB|MB|GB|TB|PB|EB] (or B,K,M,G,T,P,E; no unit = bytes),\n"
               "UNBOUNDED, or N%% of the storage volume. delete shadows takes at most one of /oldest, /all, /shadow.\n\n");
        print_commands(stdout);
}

vss_hresult vssadmin_call(struct vssadmin *va, const char *method, json_t *params, json_t **ret_result)
{
        _cleanup_free_ char *params_text = NULL, *result_text = NULL;
        json_error_t jerr;
        vss_hresult hr;
        json_t *result;

        if (!va->client) {
                hr = vss_client_connect(va->socket, &va->client);
                if (VSS_FAILED(hr)) {
                        json_decref(params);
                        tool_print_errorf(hr, "Cannot reach vssd at %s (is vssd running?).",
                                          va->socket ?: vss_default_socket_path());
                        return hr;
                }
        }

        if (params) {
                params_text = json_dumps(params, JSON_COMPACT);
                json_decref(params);
                if (!params_text)
                        return tool_print_error(VSS_E_OUTOFMEMORY, NULL), VSS_E_OUTOFMEMORY;
        }

        hr = vss_client_call(va->client, method, params_text, &result_text);
        if (VSS_FAILED(hr)) {
                tool_print_error(hr, vss_client_get_error_detail(va->client));
                return hr;
        }

        result = json_loads(result_text ?: "{}", 0, &jerr);
        if (!result || !json_is_object(result)) {
                json_decref(result);
                tool_print_errorf(VSS_E_UNEXPECTED, "vssd sent a result to %s that is not a JSON object.",
                                  method);
                return VSS_E_UNEXPECTED;
        }
        if (ret_result)
                *ret_result = result;
        else
                json_decref(result);
        return VSS_S_OK;
}

int vssadmin_print_json(const json_t *result)
{
        _cleanup_free_ char *s = json_dumps(result, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

        if (!s)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        printf("%s\n", s);
        return 0;
}

char *vssadmin_format_time(int64_t time_us, char *buf, size_t len)
{
        time_t t = (time_t)(time_us / 1000000);
        struct tm tm;

        if (!localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
                snprintf(buf, len, "?");
        return buf;
}

bool vssadmin_confirm(const char *question)
{
        char line[256];

        fputs(question, stdout);
        fflush(stdout);
        if (!fgets(line, sizeof(line), stdin))
                return false;
        line[strcspn(line, "\r\n")] = 0;
        return streq(line, "y") || streq(line, "Y");
}

vss_hresult vssadmin_parse_id(const char *option, const char *text, char ret[VSS_ID_STRING_MAX])
{
        vss_id id;

        if (VSS_FAILED(vss_id_parse(text, &id))) {
                tool_print_errorf(VSS_E_INVALIDARG, "/%s=%s is not a shadow copy id ({xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}).",
                                  option, text);
                return VSS_E_INVALIDARG;
        }
        vss_id_format(&id, ret);
        return VSS_S_OK;
}

int vssadmin_query_shadows(struct vssadmin *va, const char *volume, const char *shadow, json_t **ret_result)
{
        char id[VSS_ID_STRING_MAX];
        json_t *params;

        params = json_object();
        if (!params)
                return tool_print_error(VSS_E_OUTOFMEMORY, NULL);
        if (volume)
                json_object_set_new(params, "volume", json_string(volume));
        if (shadow) {
                if (VSS_FAILED(vssadmin_parse_id("shadow", shadow, id))) {
                        json_decref(params);
                        return TOOL_EXIT_USAGE;
                }
                json_object_set_new(params, "shadow_id", json_string(id));
        }
        if (VSS_FAILED(vssadmin_call(va, "Shadows.Query", params, ret_result)))
                return TOOL_EXIT_FAILURE;
        return EXIT_SUCCESS;
}

static int verb_explain(struct vssadmin *va, const char *code)
{
        const struct vss_hresult_info *info = vss_hresult_parse(code);
        char hex[11];

        if (!info) {
                tool_print_errorf(VSS_E_INVALIDARG,
                                  "'%s' is not a known HRESULT (give its hex value, e.g. 0x80042316, "
                                  "or its name, e.g. VSS_E_SNAPSHOT_SET_IN_PROGRESS).", code);
                return TOOL_EXIT_FAILURE;
        }
        printf("%s %s\nMeaning: %s\nWhat to do: %s\n", tool_format_hresult(info->value, hex), info->name,
               info->message, info->remedy);
        return 0;
}

static bool want_help(int argc, char **argv)
{
        for (int i = 1; i < argc; i++)
                if (streq(argv[i], "/?") || streq(argv[i], "-?"))
                        return true;
        return false;
}

static const struct verb *find_verb(const struct tool_args *a)
{
        if (a->n_positional < 1)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(verbs); i++) {
                if (strcasecmp(a->positional[0], verbs[i].word1) != 0)
                        continue;
                if (!verbs[i].word2)
                        return a->n_positional == 2 ? &verbs[i] : NULL;
                if (a->n_positional == 2 && strcasecmp(a->positional[1], verbs[i].word2) == 0)
                        return &verbs[i];
        }
        return NULL;
}

static int run(int argc, char **argv)
{
        _cleanup_free_ char *err = NULL;
        struct vssadmin va = {};
        const struct verb *v;
        vss_hresult hr;
        int r;

        if (want_help(argc, argv)) {
                print_usage();
                return 0;
        }

        hr = tool_args_parse(options, _OPT_MAX, TOOL_ARGS_SLASH, argc, argv, &va.args, &err);
        if (VSS_FAILED(hr)) {
                tool_print_error(hr, err);
                return TOOL_EXIT_USAGE;
        }
        if (tool_args_flag(&va.args, OPT_HELP)) {
                print_usage();
                tool_args_done(&va.args);
                return 0;
        }
        va.json = tool_args_flag(&va.args, OPT_JSON);
        va.socket = tool_args_value(&va.args, OPT_SOCKET);

        v = find_verb(&va.args);
        if (!va.json)
                print_banner();
        if (!v && va.args.n_positional == 1 && strcasecmp(va.args.positional[0], "explain") == 0) {
                tool_print_error(VSS_E_INVALIDARG, "Missing CODE. Syntax: vssadmin explain CODE");
                tool_args_done(&va.args);
                return TOOL_EXIT_USAGE;
        }
        if (!v) {
                fflush(stdout);
                fputs("Error: Invalid command.\n\n", stderr);
                print_commands(stderr);
                tool_args_done(&va.args);
                return TOOL_EXIT_USAGE;
        }

        for (unsigned o = 0; o < _OPT_MAX; o++) {
                bool given = tool_args_flag(&va.args, o);

                if (given && !((v->allowed | O_GLOBAL) & O(o))) {
                        tool_print_errorf(VSS_E_INVALIDARG, "Option /%s is not valid for '%s%s%s'.",
                                          options[o].name, v->word1, v->word2 ? " " : "", v->word2 ?: "");
                        tool_args_done(&va.args);
                        return TOOL_EXIT_USAGE;
                }
                if (!given && (v->required & O(o))) {
                        tool_print_errorf(VSS_E_INVALIDARG,
                                          "Missing required option /%s. Syntax: vssadmin %s%s%s %s",
                                          options[o].name, v->word1, v->word2 ? " " : "",
                                          v->word2 ?: "", v->syntax);
                        tool_args_done(&va.args);
                        return TOOL_EXIT_USAGE;
                }
        }

        if (v->run)
                r = v->run(&va);
        else
                r = verb_explain(&va, va.args.positional[1]);

        fflush(stdout);
        vss_client_free(va.client);
        tool_args_done(&va.args);
        return r;
}

int main(int argc, char **argv)
{
        return run(argc, argv);
}
