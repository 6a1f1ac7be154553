/* Checks shared by the fuzz targets of conf/. */
#include <errno.h>

#include "disklib/util.h"
#include "tests/fuzz/confcheck.h"
#include "tests/fuzz/fuzz.h"

char *fuzz_dump_conf(const struct conf *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f)
        return NULL;
    conf_dump(c, f);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

char *fuzz_dump_stack(const struct dl_node *n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    if (!f)
        return NULL;
    conf_dump_stack(n, f, 0);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void fuzz_check_diag(int r, const struct conf_diag *diag)
{
    if (r < 0 && r != -ENOMEM && diag->n == 0) {
        fprintf(stderr, "failed with %d and no message\n", r);
        abort();
    }
    for (size_t i = 0; i < diag->n; i++)
        FUZZ_CHECK(diag->msg[i] && *diag->msg[i]);
}

void fuzz_check_msg(int r, const char *msg)
{
    if (r < 0 && r != -ENOMEM && !msg) {
        fprintf(stderr, "failed with %d and no message\n", r);
        abort();
    }
    FUZZ_CHECK(!msg || *msg);
}

void fuzz_check_reload(const struct conf *c)
{
    _cleanup_free_ char *first = fuzz_dump_conf(c), *second = NULL;
    struct conf_diag diag = {0};
    struct conf again;
    int r;

    if (!first)
        return;
    conf_init(&again);
    r = conf_load_string(&again, first, "dump", FUZZ_BASE_DIR, &diag);
    if (r == 0)
        r = conf_validate(&again, &diag);
    if (r == -EINVAL) {
        fprintf(stderr, "the dump does not read back:\n%s\n", first);
        for (size_t i = 0; i < diag.n; i++)
            fprintf(stderr, "  %s\n", diag.msg[i]);
        abort();
    }
    if (r == 0) {
        second = fuzz_dump_conf(&again);
        if (second && strcmp(first, second) != 0) {
            fprintf(stderr, "the dump read back prints differently:\n"
                    "--- first\n%s\n--- read back\n%s\n", first, second);
            abort();
        }
    }
    conf_free(&again);
    conf_diag_clear(&diag);
}
