/*
 * Forgets to free what cappa handed out (a caption, a decoded image, a model), on purpose:
 * valgrind must report them as lost, as it would memory from malloc. This shows that the
 * library's tables of live objects do not hide leaks, so that the clean valgrind runs of the
 * other programs mean something. Run by ffi/tests/c_api.rs:  forgets MODEL IMAGE
 */
#include <stdio.h>

#include "cappa.h"

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    cappa_model_params params = cappa_model_default_params();
    params.device = CAPPA_DEVICE_CPU;
    cappa_model *model = NULL;
    cappa_image image;
    char *text = NULL;
    if (cappa_model_load_file(argv[1], &params, &model) != CAPPA_OK ||
        cappa_image_load_file(argv[2], &image) != CAPPA_OK ||
        cappa_caption(model, &image, NULL, &text) != CAPPA_OK) {
        fprintf(stderr, "%s\n", cappa_last_error());
        return 1;
    }
    printf("%s\n", text);
    model = NULL, image.pixels = NULL, text = NULL; /* the last references, gone */
    return 0;
}
