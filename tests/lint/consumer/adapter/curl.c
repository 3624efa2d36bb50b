/* SPDX-License-Identifier: MIT */
/* Built against an installed libctx-curl by tests/lint/install.sh. */
#include <ctx/curl.h>

#include <errno.h>
#include <stdio.h>

int main(void)
{
    CURL *h = curl_easy_init();
    if (!h || ctx_curl_perform(ctx_background(), NULL, NULL) != EINVAL)
        return 1;
    curl_easy_cleanup(h);
    printf("consumer: ok (libctx-curl, %s)\n", curl_version());
    return 0;
}
