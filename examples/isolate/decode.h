/* SPDX-License-Identifier: MIT */
/*
 * The isolated decoder of the case study: PNG images decoded by libpng in
 * a process of their own (ctx_isolate), so that an image that crashes the
 * decoder or keeps it busy is an error for one request, not the end of
 * the server.
 */
#ifndef ISOLATE_DECODE_H
#define ISOLATE_DECODE_H

#include <ctx/ctx.h>

#include <stddef.h>
#include <stdint.h>

/* Images up to this many pixels come back whole; larger ones are decoded
 * (and checked) but only their size and checksum come back. */
#define DECODE_MAX_PIXELS (4096u * 4096u)

typedef struct image {
    uint32_t width, height;
    uint64_t checksum;   /* FNV-1a of the RGBA rows, top to bottom */
    unsigned char *rgba; /* width * height * 4 bytes (malloc'd), or NULL
                            when over DECODE_MAX_PIXELS */
} image_t;

/*
 * decode_png - decode the PNG in png[0..len) to 8-bit RGBA, in a process
 * of its own, under `c`. Call ctx_isolate_init early in main first.
 *
 * The decoder is libpng used as much legacy code uses it: without a
 * setjmp error handler, so that on a corrupt image libpng's default error
 * handling abort()s the process, which here is the isolated one.
 *
 * Returns: 0 and the image in *img (free it with image_free).
 * Errors: ECHILD when the decoder crashed (why says how: "decoder killed
 * by SIGABRT"); ECANCELED or ETIMEDOUT when c ended first (the decoder was
 * killed); EINVAL for NULL arguments or an input too short to be a PNG;
 * ENOMEM, EAGAIN, EMFILE when the isolated process could not be made. A
 * message is copied to why (up to whylen bytes) when why is not NULL.
 */
int decode_png(ctx_t *c, const void *png, size_t len, image_t *img, char *why,
               size_t whylen);

/* image_free - free the pixels of img (NULL does nothing). */
void image_free(image_t *img);

/* fnv1a - the checksum of decode_png, to compare with. */
uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n);
#define FNV1A_INIT 0xcbf29ce484222325ULL

#endif /* ISOLATE_DECODE_H */
