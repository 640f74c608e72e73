/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <sys/types.h>
#include <unistd.h>

#include "basic/macro.h"
#include "basic/wire.h"

void wire_buf_init(struct wire_buf *b, size_t max)
{
        *b = (struct wire_buf){ .max = max ? max : WIRE_MESSAGE_MAX };
}

void wire_buf_done(struct wire_buf *b)
{
        free(b->data);
        *b = (struct wire_buf){ .max = b->max };
}

static void wire_buf_drop_consumed(struct wire_buf *b)
{
        if (!b->consumed)
                return;
        memmove(b->data, b->data + b->consumed, b->len - b->consumed);
        b->len -= b->consumed;
        b->scan = 0;
        b->consumed = 0;
}

static int wire_buf_reserve(struct wire_buf *b, size_t extra)
{
        size_t want;
        char *p;

        wire_buf_drop_consumed(b);
        if (b->len + extra + 1 <= b->cap)
                return 0;
        want = b->cap ? b->cap : 4096;
        while (want < b->len + extra + 1)
                want *= 2;
        p = realloc(b->data, want);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = want;
        return 0;
}

int wire_buf_append(struct wire_buf *b, const void *p, size_t n)
{
        if (wire_buf_reserve(b, n) < 0)
                return -ENOMEM;
        memcpy(b->data + b->len, p, n);
        b->len += n;
        return 0;
}

ssize_t wire_buf_fill(struct wire_buf *b, int fd)
{
        ssize_t n;

        if (wire_buf_reserve(b, 65536) < 0)
                return -ENOMEM;
        do
                n = read(fd, b->data + b->len, b->cap - b->len - 1);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        b->len += (size_t)n;
        return n;
}

int wire_buf_next_line(struct wire_buf *b, char **ret_line, size_t *ret_len)
{
        char *nl;

        wire_buf_drop_consumed(b);
        nl = b->len > b->scan ? memchr(b->data + b->scan, '\n', b->len - b->scan) : NULL;
        if (!nl) {
                b->scan = b->len;
                return b->len >= b->max ? -EMSGSIZE : 0;
        }
        if ((size_t)(nl - b->data) + 1 > b->max)
                return -EMSGSIZE;
        *nl = 0;
        *ret_line = b->data;
        *ret_len = (size_t)(nl - b->data);
        b->consumed = *ret_len + 1;
        return 1;
}

vss_hresult wire_parse(const char *line, size_t len, struct wire_msg *ret, char *errbuf, size_t errlen)
{
        json_error_t jerr;
        json_t *root, *id, *v;

        *ret = (struct wire_msg){ 0 };
        root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                snprintf(errbuf, errlen, "not JSON: %s at byte %d", jerr.text, jerr.position);
                return VSS_E_INVALIDARG;
        }
        if (!json_is_object(root)) {
                snprintf(errbuf, errlen, "a message must be a JSON object");
                json_decref(root);
                return VSS_E_INVALIDARG;
        }
        ret->root = root;

        id = json_object_get(root, "id");
        if (id && json_is_integer(id) && json_integer_value(id) >= 0) {
                ret->has_id = true;
                ret->id = json_integer_value(id);
        } else if (id && !json_is_null(id)) {
                snprintf(errbuf, errlen, "field 'id' must be a non-negative integer");
                goto bad;
        }

        v = json_object_get(root, "method");
        if (v) {
                if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 128) {
                        snprintf(errbuf, errlen, "field 'method' must be a non-empty string");
                        goto bad;
                }
                ret->kind = WIRE_REQUEST;
                ret->method = json_string_value(v);
                ret->params = json_object_get(root, "params");
                if (!ret->params || json_is_null(ret->params)) {
                        ret->params = json_object();
                        json_object_set_new(root, "params", ret->params);
                } else if (!json_is_object(ret->params)) {
                        snprintf(errbuf, errlen, "field 'params' must be an object");
                        goto bad;
                }
                return VSS_S_OK;
        }
        if (!ret->has_id) {
                snprintf(errbuf, errlen, "a reply needs an 'id'");
                goto bad;
        }
        v = json_object_get(root, "error");
        if (v) {
                if (!json_is_object(v) || !wire_parse_hresult(json_object_get(v, "hresult"), &ret->hr) ||
                    VSS_SUCCEEDED(ret->hr)) {
                        snprintf(errbuf, errlen, "field 'error' must carry a failure 'hresult'");
                        goto bad;
                }
                ret->kind = WIRE_ERROR;
                ret->detail = json_get_str(v, "detail");
                return VSS_S_OK;
        }
        v = json_object_get(root, "result");
        if (!v) {
                snprintf(errbuf, errlen, "a message needs 'method', 'result' or 'error'");
                goto bad;
        }
        ret->kind = WIRE_RESULT;
        ret->result = v;
        return VSS_S_OK;
bad:
        wire_msg_done(ret);
        return VSS_E_INVALIDARG;
}

void wire_msg_done(struct wire_msg *m)
{
        json_decref(m->root);
        *m = (struct wire_msg){ 0 };
}

static json_t *json_id_or_null(json_int_t id)
{
        return id < 0 ? json_null() : json_integer(id);
}

json_t *wire_request(json_int_t id, const char *method, json_t *params)
{
        return json_pack("{s:o, s:s, s:o}", "id", json_id_or_null(id), "method", method, "params",
                         params ? params : json_object());
}

json_t *wire_result(json_int_t id, json_t *result)
{
        return json_pack("{s:o, s:o}", "id", json_id_or_null(id), "result", result ? result : json_object());
}

/* A detail may quote a peer's bytes (a parser's error text does): JSON strings must be UTF-8,
 * so a detail that is not is sent with every non-ASCII byte as '?', never dropped. */
static json_t *json_text_lossy(const char *s)
{
        json_t *j;
        char *copy;

        if (!s)
                return NULL;
        j = json_string(s);
        if (j)
                return j;
        copy = strdup(s);
        if (!copy)
                return NULL;
        for (char *p = copy; *p; p++)
                if ((unsigned char)*p >= 0x80)
                        *p = '?';
        j = json_string(copy);
        free(copy);
        return j;
}

json_t *wire_error(json_int_t id, vss_hresult hr, const char *detail)
{
        char hex[11];

        wire_format_hresult(hr, hex);
        return json_pack("{s:o, s:{s:s, s:s, s:s, s:o*}}", "id", json_id_or_null(id), "error", "hresult", hex,
                         "name", vss_hresult_name(hr), "message", vss_hresult_message(hr), "detail",
                         json_text_lossy(detail));
}

char *wire_dump(const json_t *msg, size_t *ret_len)
{
        char *s, *p;
        size_t n;

        s = json_dumps(msg, JSON_COMPACT);
        if (!s)
                return NULL;
        n = strlen(s);
        if (n + 1 > WIRE_MESSAGE_MAX) {
                free(s);
                return NULL;
        }
        p = realloc(s, n + 2);
        if (!p) {
                free(s);
                return NULL;
        }
        p[n] = '\n';
        p[n + 1] = 0;
        if (ret_len)
                *ret_len = n + 1;
        return p;
}
