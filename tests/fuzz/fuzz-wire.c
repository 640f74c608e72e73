/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the wire format (src/basic/wire.c), i.e. for what any local
 * user can send to vssd.  The input bytes are fed through a wire_buf in pieces
 * whose sizes come from a PRNG seeded by the input itself (so a crash replays
 * exactly), every complete line goes through wire_parse(), and every outcome is
 * answered the way the daemon answers it: wire_error()/wire_result() +
 * wire_dump().  The replies are parsed back to check they are well-formed
 * single lines.  The first input byte also picks a small line limit now and
 * then, so the -EMSGSIZE path is reached without megabyte inputs.
 *
 * Invariants checked (abort() on violation, which libFuzzer and the standalone
 * driver both report): a returned line holds no '\n' and fits the limit; a
 * dumped reply is one line ending in '\n'; a reply with an id parses back as the
 * same kind with the same id.
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng_next(uint64_t *s)
{
        /* splitmix64: any fixed, cheap generator does; it only has to be deterministic. */
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void check(bool ok, const char *what)
{
        if (!ok) {
                fprintf(stderr, "fuzz-wire: invariant violated: %s\n", what);
                abort();
        }
}

static void check_reply(json_t *reply, json_int_t id, enum wire_kind kind)
{
        struct wire_msg back;
        char err[256];
        size_t len = 0;
        char *text;

        check(reply != NULL, "a reply can always be built");
        text = wire_dump(reply, &len);
        json_decref(reply);
        if (!text)
                return; /* over WIRE_MESSAGE_MAX: the caller would send an error instead */
        check(len > 0 && text[len - 1] == '\n', "a dumped reply ends in a newline");
        check(memchr(text, '\n', len - 1) == NULL, "a dumped reply is one line");
        check(strlen(text) == len, "a dumped reply holds no NUL");
        if (id >= 0) {
                check(wire_parse(text, len - 1, &back, err, sizeof(err)) == VSS_S_OK, "a reply parses back");
                check(back.kind == kind, "a reply parses back as the same kind");
                check(back.has_id && back.id == id, "a reply keeps its id");
                wire_msg_done(&back);
        }
        free(text);
}

static void handle_line(const char *line, size_t len)
{
        struct wire_msg m;
        char err[256] = "";
        vss_hresult hr;

        hr = wire_parse(line, len, &m, err, sizeof(err));
        if (hr != VSS_S_OK) {
                check(hr == VSS_E_INVALIDARG, "wire_parse fails only with E_INVALIDARG");
                check(m.root == NULL, "a failed parse owns nothing");
                check(err[0] != 0, "a failed parse says why");
                check_reply(wire_error(-1, hr, err), -1, WIRE_ERROR);
                check_reply(wire_error(0, hr, err), 0, WIRE_ERROR);
                return;
        }

        check(m.root != NULL, "a parsed message has a root");
        switch (m.kind) {
        case WIRE_REQUEST:
                check(m.method != NULL && m.method[0] != 0, "a request has a method");
                check(json_is_object(m.params), "a request has object params");
                check_reply(wire_error(m.has_id ? m.id : -1, VSS_E_NOT_SUPPORTED, m.method),
                            m.has_id ? m.id : -1, WIRE_ERROR);
                check_reply(wire_result(m.has_id ? m.id : -1, json_deep_copy(m.params)), m.has_id ? m.id : -1,
                            WIRE_RESULT);
                (void)json_get_str(m.params, "volume");
                {
                        vss_id id;
                        json_int_t i;
                        (void)json_get_id(m.params, "writer_id", &id);
                        (void)json_get_int(m.params, "freeze_timeout_ms", &i);
                        (void)json_get_bool(m.params, "all", false);
                }
                break;
        case WIRE_RESULT:
                check(m.has_id, "a result has an id");
                check(m.result != NULL, "a result has a value");
                check_reply(wire_result(m.id, json_deep_copy(m.result)), m.id, WIRE_RESULT);
                break;
        case WIRE_ERROR:
                check(m.has_id, "an error has an id");
                check(VSS_FAILED(m.hr), "an error carries a failure code");
                (void)vss_hresult_name(m.hr);
                (void)vss_hresult_message(m.hr);
                (void)vss_writer_error_label(m.hr);
                check_reply(wire_error(m.id, m.hr, m.detail), m.id, WIRE_ERROR);
                break;
        default:
                check(false, "wire_parse returns a known kind");
        }
        wire_msg_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct wire_buf b;
        uint64_t seed = 0x6f70656e767373ULL;
        size_t off = 0, max;

        for (size_t i = 0; i < size && i < 16; i++)
                seed = seed * 31 + data[i];
        /* Mostly the real limit; sometimes a tiny one so oversized lines are common. */
        max = size > 0 && (data[0] & 7) == 7 ? 16 + (data[0] >> 3) * 8 : 0;
        wire_buf_init(&b, max);

        while (off < size) {
                size_t piece = 1 + rng_next(&seed) % 97;
                char *line;
                size_t len;
                int r;

                if (piece > size - off)
                        piece = size - off;
                if (wire_buf_append(&b, data + off, piece) < 0)
                        break;
                off += piece;

                while ((r = wire_buf_next_line(&b, &line, &len)) == 1) {
                        check(memchr(line, '\n', len) == NULL, "a line holds no newline");
                        check(line[len] == 0, "a line is NUL-terminated");
                        check(len + 1 <= b.max, "a line fits the limit");
                        handle_line(line, len);
                }
                if (r == -EMSGSIZE) {
                        /* The daemon answers once and disconnects: framing is lost. */
                        check_reply(wire_error(-1, VSS_E_INVALIDARG, "message too long"), -1, WIRE_ERROR);
                        break;
                }
                check(r == 0, "wire_buf_next_line returns 1, 0 or -EMSGSIZE");
        }

        wire_buf_done(&b);
        return 0;
}
