/*
 * caption: describe an image with a CapPa model through libcappa, and classify it against
 * labels.
 *
 *     caption [--device auto|cpu|gpu] MODEL IMAGE [LABEL...]
 *
 * MODEL is a model file with a tokenizer; IMAGE a PNG or JPEG file (decoded by
 * cappa_image_load_file, so this program needs no image library). Without labels it uses three
 * of its own. It prints the model, the captions of the image and of its left half (a view into
 * the same pixels, through the row stride) with each decoding strategy, the greedy caption
 * token by token as it is decoded, the image's embedding, and the label probabilities.
 *
 * Build (see Makefile): cc -std=c99 -I../../ffi/include caption.c -L<dir of libcappa> -lcappa
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cappa.h"

/* Prints the failed call and the library's message, and leaves. */
static void check(cappa_status status, const char *what) {
    if (status != CAPPA_OK) {
        fprintf(stderr, "caption: %s failed: %s: %s\n", what, cappa_status_string(status),
                cappa_last_error());
        exit(1);
    }
}

/* Streams the greedy caption: called for every new token. */
static int on_token(void *user_data, size_t image, uint32_t token, const char *text) {
    int *count = user_data;
    (*count)++;
    printf("  image %zu +%u \"%s\"\n", image, token, text);
    return 1; /* go on */
}

/* Reports progress on stderr (stdout stays comparable between runs and devices). */
static int on_progress(void *user_data, float progress) {
    fprintf(stderr, "%s: %3.0f%%\n", (const char *)user_data, progress * 100.0f);
    return 1; /* 0 would abort the call with CAPPA_ERR_ABORTED */
}

int main(int argc, char **argv) {
    cappa_model_params model_params = cappa_model_default_params();
    int arg = 1;
    if (arg + 1 < argc && strcmp(argv[arg], "--device") == 0) {
        const char *d = argv[arg + 1];
        model_params.device = strcmp(d, "cpu") == 0   ? CAPPA_DEVICE_CPU
                              : strcmp(d, "gpu") == 0 ? CAPPA_DEVICE_GPU
                                                      : CAPPA_DEVICE_AUTO;
        arg += 2;
    }
    if (argc - arg < 2) {
        fprintf(stderr, "usage: %s [--device auto|cpu|gpu] MODEL IMAGE [LABEL...]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[arg], *image_path = argv[arg + 1];
    static const char *default_labels[] = {"a red circle", "a blue square", "a green triangle"};
    const char *const *labels = argc - arg > 2 ? (const char *const *)&argv[arg + 2] : default_labels;
    size_t n_labels = argc - arg > 2 ? (size_t)(argc - arg - 2) : 3;

    if (cappa_abi_version() != CAPPA_ABI_VERSION) {
        fprintf(stderr, "caption: cappa.h and libcappa %s do not match\n", cappa_version());
        return 1;
    }

    cappa_model *model = NULL;
    check(cappa_model_load_file(model_path, &model_params, &model), "loading the model");
    cappa_model_info info;
    check(cappa_model_get_info(model, &info), "cappa_model_get_info");
    printf("model: %s (%ux%u px, vocabulary %u, captions up to %u tokens, %llu parameters)\n",
           info.name, info.image_size, info.image_size, info.vocab_size, info.max_len,
           (unsigned long long)info.num_params);
    printf("device: %s\n", info.device);

    cappa_image image;
    check(cappa_image_load_file(image_path, &image), "loading the image");
    printf("image: %ux%u\n", image.width, image.height);
    /* The left half of the same pixels: fewer pixels per row, the same row stride. */
    cappa_image images[2] = {image, image};
    images[1].width = image.width / 2 > 0 ? image.width / 2 : 1;

    /* Greedy decoding, streamed token by token. */
    cappa_caption_params params = cappa_caption_default_params();
    int streamed = 0;
    params.on_token = on_token;
    params.on_token_user_data = &streamed;
    printf("greedy, streamed:\n");
    char *text = NULL;
    check(cappa_caption(model, &image, &params, &text), "cappa_caption");
    printf("greedy: \"%s\" (%d tokens)\n", text, streamed);
    check(cappa_string_free(text), "cappa_string_free");

    /* Every strategy on a batch of two. */
    static const struct {
        const char *name;
        cappa_decode strategy;
    } strategies[] = {{"greedy", CAPPA_DECODE_GREEDY},
                      {"beam", CAPPA_DECODE_BEAM},
                      {"sample", CAPPA_DECODE_SAMPLE},
                      {"parallel", CAPPA_DECODE_PARALLEL}};
    for (size_t s = 0; s < sizeof strategies / sizeof strategies[0]; s++) {
        if (strategies[s].strategy == CAPPA_DECODE_PARALLEL && !info.can_parallel) continue;
        params = cappa_caption_default_params();
        params.strategy = strategies[s].strategy;
        params.seed = 7;
        params.temperature = 0.8f;
        params.progress = on_progress;
        params.progress_user_data = (void *)strategies[s].name;
        char *texts[2];
        float log_probs[2];
        check(cappa_caption_batch(model, images, 2, &params, texts, log_probs),
              "cappa_caption_batch");
        for (size_t i = 0; i < 2; i++) {
            printf("%s %s: \"%s\" (log-prob %.4f)\n", strategies[s].name, i ? "half" : "image",
                   texts[i], log_probs[i]);
            check(cappa_string_free(texts[i]), "cappa_string_free");
        }
    }

    /* Embeddings: ask for the size, then fill a buffer. */
    size_t len = 0;
    check(cappa_embed(model, images, 2, NULL, &len), "cappa_embed (size)");
    float *embeddings = malloc(len * sizeof *embeddings);
    if (!embeddings) return 1;
    check(cappa_embed(model, images, 2, embeddings, &len), "cappa_embed");
    for (size_t i = 0; i < 2; i++) {
        const float *e = embeddings + i * info.embedding_size;
        printf("embedding %s: %u floats: %.5f %.5f %.5f %.5f ...\n", i ? "half" : "image",
               info.embedding_size, e[0], e[1], e[2], e[3]);
    }
    free(embeddings);

    /* Zero-shot classification of the image. */
    float *probabilities = malloc(n_labels * sizeof *probabilities);
    if (!probabilities) return 1;
    check(cappa_classify(model, &image, 1, labels, n_labels, NULL, NULL, probabilities),
          "cappa_classify");
    size_t best = 0;
    printf("labels:\n");
    for (size_t k = 0; k < n_labels; k++) {
        printf("  %.6f %s\n", probabilities[k], labels[k]);
        if (probabilities[k] > probabilities[best]) best = k;
    }
    printf("best: %s\n", labels[best]);
    free(probabilities);

    check(cappa_image_free(&image), "cappa_image_free");
    check(cappa_model_free(model), "cappa_model_free");
    return 0;
}
