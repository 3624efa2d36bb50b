/* SPDX-License-Identifier: MIT */
/* Built against an installed libctx by tests/lint/install.sh. */
#include <ctx/ctx.h>

#include <stdio.h>

int main(void)
{
    ctx_t *c;
    if (ctx_with_timeout(ctx_background(), CTX_HOUR, &c) != 0)
        return 1;
    ctx_cancel(c);
    if (ctx_err(c) != ECANCELED || (ctx_err)(c) != ECANCELED)
        return 1;
    ctx_release(c);
    printf("consumer: ok (libctx %s)\n", ctx_version());
    return 0;
}
