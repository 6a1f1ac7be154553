/* Fuzz target: configuration files (libconfig syntax). A file that loads
 * is validated (phase one only: no file is opened) and dumped, and the
 * dump must load again and print the same. Inputs with "@include" are
 * skipped, since libconfig would open the named file. */
#include "conf/conf.h"
#include "disklib/util.h"
#include "tests/fuzz/confcheck.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    _cleanup_free_ char *text = fuzz_strdup(data, size);
    struct conf_diag diag = {0};
    struct conf c;
    int r;

    if (!text || strstr(text, "@include"))
        return 0;
    conf_init(&c);
    r = conf_load_string(&c, text, "fuzz.conf", FUZZ_BASE_DIR, &diag);
    fuzz_check_diag(r, &diag);
    if (r == 0) {
        FUZZ_CHECK(diag.n == 0);
        r = conf_validate(&c, &diag);
        fuzz_check_diag(r, &diag);
        if (r == 0)
            fuzz_check_reload(&c);
    }
    conf_free(&c);
    conf_diag_clear(&diag);
    return 0;
}
