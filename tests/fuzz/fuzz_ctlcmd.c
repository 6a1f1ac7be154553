/* Fuzz target: control commands, one write(2) to a .ctl file: split into
 * words, then parsed as a size command (.ctl/NAME/size) and as a snapshot
 * command (.ctl/NAME/snapshot, with its layer spec) and as a reservation
 * command (.ctl/NAME/pr). */
#include <errno.h>

#include "conf/conf.h"
#include "disklib/util.h"
#include "fs/ctlcmd.h"
#include "tests/fuzz/fuzz.h"

static void ctlcmd_check_msg(int r, const char *msg)
{
    if (r < 0 && r != -ENOMEM && !msg) {
        fprintf(stderr, "failed with %d and no message\n", r);
        abort();
    }
    FUZZ_CHECK(r < 0 || !msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *msg = NULL;
    struct ctl_args args = {0};
    struct ctl_size_cmd cmd;
    int r;

    r = ctl_split((const char *)data, size, &args, &msg);
    ctlcmd_check_msg(r, msg);
    if (r < 0) {
        FUZZ_CHECK(!args.buf && args.argc == 0);
        return 0;
    }
    FUZZ_CHECK(args.argc >= 1 && args.argc <= CTL_MAX_ARGS);
    /* The words are packed into buf, which holds at most the input. */
    for (int i = 0; i < args.argc; i++)
        FUZZ_CHECK(args.argv[i] >= args.buf &&
                   args.argv[i] + strlen(args.argv[i]) <= args.buf + size);
    r = ctl_parse_size(&args, &cmd, &msg);
    ctlcmd_check_msg(r, msg);
    if (r == 0)
        FUZZ_CHECK(cmd.op == CTL_SIZE_SET || cmd.op == CTL_SIZE_GROW ||
                   cmd.op == CTL_SIZE_SHRINK);
    free(msg);
    msg = NULL;
    {
        struct ctl_snapshot_cmd snap;
        struct dl_node *layer = NULL;

        r = ctl_parse_snapshot(&args, &snap, &msg);
        ctlcmd_check_msg(r, msg);
        if (r == 0 && snap.op == CTL_SNAPSHOT_PUSH) {
            FUZZ_CHECK(snap.layer != NULL);
            r = conf_parse_layerspec(snap.layer, &layer, &msg);
            ctlcmd_check_msg(r, msg);
            if (r == 0) {
                r = dl_node_validate(layer, &msg);
                ctlcmd_check_msg(r, msg);
            }
            dl_node_free(layer);
        }
    }
    free(msg);
    msg = NULL;
    {
        struct ctl_pr_cmd pr;

        r = ctl_parse_pr(&args, &pr, &msg);
        ctlcmd_check_msg(r, msg);
        if (r == 0) {
            FUZZ_CHECK(pr.who && *pr.who && strlen(pr.who) <= CTL_PR_MAX_NAME);
            FUZZ_CHECK(pr.op <= CTL_PR_PREEMPT);
            if (pr.op == CTL_PR_RESERVE || pr.op == CTL_PR_RELEASE ||
                pr.op == CTL_PR_PREEMPT)
                FUZZ_CHECK(ctl_pr_type_name(pr.type) != NULL);
        }
    }
    ctl_args_free(&args);
    return 0;
}
