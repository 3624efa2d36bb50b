/* SPDX-License-Identifier: MIT */
/*
 * decode_png: libpng run under ctx_isolate, its crashes and its endless
 * work contained in a process that the caller can lose.
 *
 * DESIGN
 *
 * The decoder (legacy_decode) is the part we pretend we cannot change:
 * libpng with no setjmp, so any error libpng meets (a bad signature, a
 * CRC mismatch, a truncated stream, corrupt compressed data) ends in its
 * default handler's abort(). It also decodes whatever size the image
 * claims, row by row: a small file that inflates to hundreds of megabytes
 * keeps it busy for seconds. Run in the caller's process, the first kind
 * of image would kill the server and the second would hold a thread that
 * nothing can stop.
 *
 * Under ctx_isolate it runs in a forked process: an abort() is the
 * ECHILD of one call (with the signal), and the end of the caller's
 * context (the request's deadline, a shutdown) kills the process with
 * SIGKILL and returns at once. The input and the output travel through
 * the shared memory ctx_isolate sets up; the output is a header (size,
 * checksum, whether the pixels follow) and the RGBA pixels when they fit
 * the room the caller gave, which it sizes from the IHDR chunk (fixed
 * offsets, read without trusting them: the decoder checks everything and
 * never writes past the room).
 */
#define _POSIX_C_SOURCE 200809L
#include "decode.h"

#include <ctx/force.h>

#include <errno.h>
#include <png.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the decoder sends back before the pixels. */
struct header {
    uint32_t width, height;
    uint64_t checksum;
    uint32_t pixels; /* the RGBA pixels follow */
    uint32_t pad;
};

struct source {
    const unsigned char *p;
    size_t n, off;
};

uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void read_mem(png_structp png, png_bytep out, size_t n)
{
    struct source *s = png_get_io_ptr(png);
    if (n > s->n - s->off)
        png_error(png, "truncated image"); /* no setjmp: abort() */
    memcpy(out, s->p + s->off, n);
    s->off += n;
}

/* Ask libpng for 8-bit RGBA whatever the image holds. */
static void to_rgba8(png_structp png, png_infop info)
{
    int type = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);

    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_tRNS_to_alpha(png);
    if (depth == 16)
        png_set_strip_16(png);
    if (type == PNG_COLOR_TYPE_GRAY || type == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(png);
    png_set_filler(png, 0xff, PNG_FILLER_AFTER);
}

/* The isolated function: the legacy decoder (see DESIGN). */
static int legacy_decode(const void *in, size_t in_len, void *out,
                         size_t out_cap, size_t *out_len)
{
    struct source s = {in, in_len, 0};
    struct header h = {0, 0, FNV1A_INIT, 0, 0};
    unsigned char *dst = (unsigned char *)out + sizeof h, *row;
    png_structp png;
    png_infop info;
    size_t rowbytes;
    int passes;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (!png || !(info = png_create_info_struct(png)))
        return 1;
    png_set_read_fn(png, &s, read_mem);
    png_read_info(png, info);
    to_rgba8(png, info);
    passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    h.width = png_get_image_width(png, info);
    h.height = png_get_image_height(png, info);
    rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)h.width * 4)
        png_error(png, "unexpected row size");
    if ((uint64_t)h.width * h.height <= DECODE_MAX_PIXELS &&
        sizeof h + rowbytes * h.height <= out_cap) {
        /* Into the output, pass over pass (interlaced images). */
        h.pixels = 1;
        for (int p = 0; p < passes; p++)
            for (uint32_t y = 0; y < h.height; y++)
                png_read_row(png, dst + y * rowbytes, NULL);
        h.checksum = fnv1a(h.checksum, dst, rowbytes * h.height);
    } else {
        /* Too big to send back: decoded and summed row by row. */
        if (passes > 1)
            png_error(png, "interlaced image too large");
        if (!(row = malloc(rowbytes)))
            png_error(png, "out of memory");
        for (uint32_t y = 0; y < h.height; y++) {
            png_read_row(png, row, NULL);
            h.checksum = fnv1a(h.checksum, row, rowbytes);
        }
        free(row);
    }
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    memcpy(out, &h, sizeof h);
    *out_len = sizeof h + (h.pixels ? rowbytes * h.height : 0);
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int fail(char *why, size_t len, int rc, const char *msg)
{
    if (why && len)
        snprintf(why, len, "%s", msg);
    return rc;
}

int decode_png(ctx_t *c, const void *png, size_t len, image_t *img, char *why,
               size_t whylen)
{
    const unsigned char *p = png;
    ctx_isolate_result_t res;
    struct header h;
    unsigned char *out;
    uint64_t pixels;
    size_t cap;
    char msg[96];
    int rc;

    if (img)
        memset(img, 0, sizeof *img);
    fail(why, whylen, 0, "");
    if (!c || !png || !img)
        return fail(why, whylen, EINVAL, "NULL argument");
    /* The signature and IHDR's width and height: 24 bytes at least. */
    if (len < 24)
        return fail(why, whylen, EINVAL, "too short to be a PNG image");
    pixels = (uint64_t)be32(p + 16) * be32(p + 20);
    cap = sizeof h + (pixels <= DECODE_MAX_PIXELS ? (size_t)pixels * 4 : 0);
    if (!(out = malloc(cap)))
        return fail(why, whylen, ENOMEM, "out of memory");

    rc = ctx_isolate(c, legacy_decode, png, len, out, cap, &res);
    if (rc == ECHILD) {
        if (res.signal)
            snprintf(msg, sizeof msg, "decoder killed by signal %d (%s)",
                     res.signal, strsignal(res.signal));
        else
            snprintf(msg, sizeof msg, "decoder exited with status %d",
                     res.exit_code);
        fail(why, whylen, rc, msg);
    } else if (rc == 0 && (res.value != 0 || res.out_len < sizeof h)) {
        rc = fail(why, whylen, EIO, "decoder failed");
    } else if (rc == 0) {
        memcpy(&h, out, sizeof h);
        img->width = h.width;
        img->height = h.height;
        img->checksum = h.checksum;
        if (h.pixels) {
            size_t n = (size_t)h.width * h.height * 4;
            if (res.out_len != sizeof h + n)
                rc = fail(why, whylen, EIO, "decoder output cut short");
            else if (!(img->rgba = malloc(n)))
                rc = fail(why, whylen, ENOMEM, "out of memory");
            else
                memcpy(img->rgba, out + sizeof h, n);
        }
    } else {
        fail(why, whylen, rc, ctx_errname(rc));
    }
    free(out);
    return rc;
}

void image_free(image_t *img)
{
    if (img) {
        free(img->rgba);
        img->rgba = NULL;
    }
}
