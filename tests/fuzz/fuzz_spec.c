/* Fuzz target: one-line specs ("file:/x.img;direct;sector=4096") and the
 * command-line form around them ("NAME=SPEC,ro"). Every input is tried
 * both ways. A spec that parses is validated (phase one only: no file is
 * opened), printed back in group form, and that print must load as a
 * configuration file that prints the same. */
#include "conf/conf.h"
#include "disklib/util.h"
#include "tests/fuzz/confcheck.h"
#include "tests/fuzz/fuzz.h"

static void spec_as_spec(const char *text)
{
    _cleanup_free_ char *msg = NULL, *dump = NULL;
    struct dl_node *n = NULL;
    int r;

    r = conf_parse_spec(text, "fuzz", FUZZ_BASE_DIR, "/nonexistent-cache", &n,
                        &msg);
    fuzz_check_msg(r, msg);
    if (r < 0) {
        FUZZ_CHECK(!n);
        return;
    }
    FUZZ_CHECK(n && !msg);
    r = dl_node_validate(n, &msg);
    fuzz_check_msg(r, msg);
    if (r == 0) {
        /* The disk a configuration would hold, borrowing the node. */
        struct conf_disk disk = {.name = (char *)"fuzz", .stack = n,
                                 .where = (char *)"fuzz"};
        const struct conf c = {.disks = &disk, .ndisks = 1};

        dump = fuzz_dump_stack(n);
        FUZZ_CHECK(!dump || strncmp(dump, "{\n", 2) == 0);
        fuzz_check_reload(&c);
    }
    dl_node_free(n);
}

static void spec_as_disk_arg(const char *text)
{
    struct conf_diag diag = {0};
    struct conf c;
    int r;

    conf_init(&c);
    r = conf_add_disk_arg(&c, text, &diag);
    fuzz_check_diag(r, &diag);
    FUZZ_CHECK(c.ndisks == (r == 0 ? 1u : 0u));
    if (r == 0) {
        FUZZ_CHECK(diag.n == 0);
        r = conf_validate(&c, &diag);
        fuzz_check_diag(r, &diag);
        if (r == 0)
            fuzz_check_reload(&c);
    }
    conf_free(&c);
    conf_diag_clear(&diag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *text = fuzz_strdup(data, size);

    if (!text)
        return 0;
    spec_as_spec(text);
    spec_as_disk_arg(text);
    return 0;
}
