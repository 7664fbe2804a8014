/*
 * EdgeSpike core: error texts. A tiny formatter, so the core needs no stdio (snprintf would
 * pull kilobytes of newlib into every firmware image).
 */
#include "edgespike.h"
#include "es_internal.h"

typedef struct {
    char *buf;
    uint32_t len, cap;
} es_sink_t;

static void put_char(es_sink_t *s, char c)
{
    if (s->len + 1 < s->cap) {
        s->buf[s->len++] = c;
    }
}

static void put_uint(es_sink_t *s, uint32_t v)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        put_char(s, digits[--n]);
    }
}

es_status_t es_error_vset(es_error_t *err, es_status_t code, uint32_t detail, const char *fmt,
                          va_list ap)
{
    if (err == NULL) {
        return code;
    }
    es_sink_t s = {err->text, 0u, (uint32_t)sizeof(err->text)};
    err->code = code;
    err->detail = detail;
    for (const char *p = fmt; *p != '\0'; ++p) {
        if (*p != '%' || p[1] == '\0') {
            put_char(&s, *p);
            continue;
        }
        ++p;
        if (*p == 'u') {
            put_uint(&s, va_arg(ap, uint32_t));
        } else if (*p == 'd') {
            int32_t v = va_arg(ap, int32_t);
            if (v < 0) {
                put_char(&s, '-');
                put_uint(&s, 0u - (uint32_t)v);
            } else {
                put_uint(&s, (uint32_t)v);
            }
        } else if (*p == 's') {
            const char *str = va_arg(ap, const char *);
            while (str != NULL && *str != '\0') {
                put_char(&s, *str++);
            }
        } else {
            put_char(&s, *p);
        }
    }
    s.buf[s.len] = '\0';
    return code;
}

es_status_t es_error_set(es_error_t *err, es_status_t code, uint32_t detail, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    es_status_t r = es_error_vset(err, code, detail, fmt, ap);
    va_end(ap);
    return r;
}

const char *es_status_name(es_status_t code)
{
    static const char *const names[] = {
        "ES_OK", "ES_ERR_BAD_CRC", "ES_ERR_BAD_FRAME", "ES_ERR_FRAME_TOO_LONG", "ES_ERR_DECODE",
        "ES_ERR_UNKNOWN_MESSAGE", "ES_ERR_NO_MODEL", "ES_ERR_MODEL_TOO_LARGE",
        "ES_ERR_MODEL_INVALID", "ES_ERR_MODEL_CRC", "ES_ERR_UPLOAD_NOT_STARTED",
        "ES_ERR_UPLOAD_OFFSET", "ES_ERR_UPLOAD_INCOMPLETE", "ES_ERR_BAD_INPUT",
        "ES_ERR_UNSUPPORTED", "ES_ERR_INTERNAL"};
    const uint32_t i = (uint32_t)code;
    return i < sizeof(names) / sizeof(names[0]) ? names[i] : "ES_ERR_?";
}
