/* SPDX-License-Identifier: MIT */
/* Built against an installed libctx-grpc by tests/lint/install.sh. */
#include <ctx/grpc.h>

#include <errno.h>
#include <stdio.h>

int main(void)
{
    gpr_timespec d;
    grpc_init();
    if (ctx_grpc_deadline(ctx_background(), &d) != 0 ||
        gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) != 0 ||
        ctx_grpc_deadline(NULL, &d) != EINVAL)
        return 1;
    grpc_shutdown_blocking();
    printf("consumer: ok (libctx-grpc, gRPC core %s)\n", grpc_version_string());
    return 0;
}
