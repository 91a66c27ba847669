/*
 * Calls every function of cappa.h with NULL and invalid arguments and checks that each returns
 * the documented status and leaves a message naming the function and the problem; then makes
 * the library panic on purpose and checks that the panic comes back as CAPPA_ERR_PANIC and
 * that the library still works. Run by ffi/tests/c_api.rs (also under valgrind):
 *
 *     api_errors MODEL IMAGE MODEL_WITHOUT_TOKENIZER CAP_ONLY_MODEL TRUNCATED_PNG
 *
 * Prints "ok: N checks" and exits 0 when everything holds; otherwise lists the failures and
 * exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cappa.h"

static int checks = 0, failures = 0;

static void fail(int line, const char *what, const char *why) {
    fprintf(stderr, "line %d: %s: %s\n", line, what, why);
    failures++;
}

#define CHECK(cond) check_true((cond), #cond, __LINE__)
static void check_true(int cond, const char *what, int line) {
    checks++;
    if (!cond) fail(line, what, "false");
}

/*
 * EXPECT(call, status, fragment): `call` returns `status`; unless that is CAPPA_OK, the last
 * error message starts with the called function's name and contains `fragment`.
 */
#define EXPECT(call, status, fragment) expect((call), (status), (fragment), #call, __LINE__)
static void expect(cappa_status got, cappa_status want, const char *fragment, const char *call,
                   int line) {
    char why[1024];
    checks++;
    if (got != want) {
        snprintf(why, sizeof why, "returned %s, expected %s (message: %s)",
                 cappa_status_string(got), cappa_status_string(want), cappa_last_error());
        fail(line, call, why);
        return;
    }
    if (want == CAPPA_OK) return;
    const char *message = cappa_last_error();
    size_t name = strcspn(call, "(");
    if (message == NULL || strncmp(message, call, name) != 0 || message[name] != ':' ||
        strstr(message, fragment) == NULL) {
        snprintf(why, sizeof why, "message \"%s\" lacks the function name or \"%s\"",
                 message ? message : "(NULL)", fragment);
        fail(line, call, why);
    }
}

static int stop_at_once(void *user_data, float progress) {
    (void)progress;
    (*(int *)user_data)++;
    return 0;
}

static int stop_after_first_token(void *user_data, size_t image, uint32_t token,
                                  const char *text) {
    (void)image;
    (void)token;
    strncpy(user_data, text, 255);
    return 0;
}

static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(n > 0 ? (size_t)n : 1);
    if (data && fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return data;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s MODEL IMAGE MODEL_WITHOUT_TOKENIZER CAP_ONLY_MODEL TRUNCATED_PNG\n",
                argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *image_path = argv[2], *bare_path = argv[3],
               *cap_only_path = argv[4], *truncated_png = argv[5];

    /* ---- version, statuses, last error ---- */
    CHECK(strcmp(cappa_last_error(), "") == 0); /* nothing has failed yet */
    CHECK(cappa_version() != NULL && strlen(cappa_version()) > 0);
    CHECK(cappa_abi_version() == CAPPA_ABI_VERSION);
    CHECK(strcmp(cappa_status_string(CAPPA_OK), "CAPPA_OK") == 0);
    CHECK(strcmp(cappa_status_string(CAPPA_ERR_NULL_POINTER), "CAPPA_ERR_NULL_POINTER") == 0);
    CHECK(strcmp(cappa_status_string(CAPPA_ERR_PANIC), "CAPPA_ERR_PANIC") == 0);
    for (cappa_status s = CAPPA_OK; s <= CAPPA_ERR_PANIC; s++)
        CHECK(strncmp(cappa_status_string(s), "CAPPA_", 6) == 0 &&
              strcmp(cappa_status_string(s), "CAPPA_UNKNOWN_STATUS") != 0);
    CHECK(strcmp(cappa_status_string(-1), "CAPPA_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(cappa_status_string(999), "CAPPA_UNKNOWN_STATUS") == 0);

    /* ---- model loading ---- */
    cappa_model_params mp = cappa_model_default_params();
    CHECK(mp.device == CAPPA_DEVICE_AUTO && mp.precision == CAPPA_PRECISION_AUTO);
    mp.device = CAPPA_DEVICE_CPU;
    cappa_model *model = (cappa_model *)&mp; /* must be overwritten with NULL on failure */
    EXPECT(cappa_model_load_file(NULL, &mp, &model), CAPPA_ERR_NULL_POINTER, "`path` is NULL");
    CHECK(model == NULL);
    EXPECT(cappa_model_load_file(model_path, &mp, NULL), CAPPA_ERR_NULL_POINTER, "`out_model`");
    EXPECT(cappa_model_load_file("/nonexistent/model.safetensors", &mp, &model), CAPPA_ERR_IO,
           "/nonexistent/model.safetensors");
    EXPECT(cappa_model_load_file(image_path, &mp, &model), CAPPA_ERR_MODEL, "safetensors");
    CHECK(model == NULL);
    cappa_model_params bad = mp;
    bad.device = 7;
    EXPECT(cappa_model_load_file(model_path, &bad, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "unknown device 7");
    bad = mp;
    bad.precision = -1;
    EXPECT(cappa_model_load_file(model_path, &bad, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "unknown precision -1");
    /* CAPPA_DEVICE_AUTO follows the CAPPA_DEVICE environment variable. */
    bad = mp;
    bad.device = CAPPA_DEVICE_AUTO;
    setenv("CAPPA_DEVICE", "bogus", 1);
    EXPECT(cappa_model_load_file(model_path, &bad, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "CAPPA_DEVICE");
    setenv("CAPPA_DEVICE", "cpu", 1);
    EXPECT(cappa_model_load_file(model_path, &bad, &model), CAPPA_OK, "");
    cappa_model_info info;
    EXPECT(cappa_model_get_info(model, &info), CAPPA_OK, "");
    CHECK(strncmp(info.device, "cpu", 3) == 0 && info.on_gpu == 0);
    EXPECT(cappa_model_free(model), CAPPA_OK, "");

    size_t size = 0;
    char *bytes = read_file(model_path, &size);
    CHECK(bytes != NULL && size > 0);
    EXPECT(cappa_model_load_memory(NULL, size, &mp, &model), CAPPA_ERR_NULL_POINTER,
           "`data` is NULL");
    EXPECT(cappa_model_load_memory(bytes, 0, &mp, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "`size` is 0");
    EXPECT(cappa_model_load_memory(bytes, SIZE_MAX, &mp, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "more than memory");
    EXPECT(cappa_model_load_memory("not a model", 11, &mp, &model), CAPPA_ERR_MODEL,
           "safetensors");
    EXPECT(cappa_model_load_memory(bytes, size / 2, &mp, &model), CAPPA_ERR_MODEL, "");
    EXPECT(cappa_model_load_memory(bytes, size, &mp, NULL), CAPPA_ERR_NULL_POINTER,
           "`out_model`");
    bad = mp;
    bad.precision = 5;
    EXPECT(cappa_model_load_memory(bytes, size, &bad, &model), CAPPA_ERR_INVALID_ARGUMENT,
           "unknown precision 5");
    cappa_model *from_memory = NULL;
    EXPECT(cappa_model_load_memory(bytes, size, NULL, &from_memory), CAPPA_OK, "");
    free(bytes);

    /* The model every later check uses (NULL params: the defaults, CAPPA_DEVICE=cpu). */
    EXPECT(cappa_model_load_file(model_path, NULL, &model), CAPPA_OK, "");
    cappa_model *bare = NULL, *cap_only = NULL;
    EXPECT(cappa_model_load_file(bare_path, &mp, &bare), CAPPA_OK, "");
    EXPECT(cappa_model_load_file(cap_only_path, &mp, &cap_only), CAPPA_OK, "");

    /* ---- model info and freeing ---- */
    EXPECT(cappa_model_get_info(NULL, &info), CAPPA_ERR_NULL_POINTER, "`model` is NULL");
    EXPECT(cappa_model_get_info(model, NULL), CAPPA_ERR_NULL_POINTER, "`out_info` is NULL");
    EXPECT(cappa_model_get_info(model, &info), CAPPA_OK, "");
    CHECK(info.image_size > 0 && info.vocab_size > 0 && info.max_len > 0);
    CHECK(info.embedding_size == info.encoder_width && info.num_params > 0);
    CHECK(info.has_tokenizer == 1 && info.file_bytes == size && strlen(info.device) > 0);
    cappa_model_info memory_info, bare_info, cap_only_info;
    EXPECT(cappa_model_get_info(from_memory, &memory_info), CAPPA_OK, "");
    CHECK(memory_info.num_params == info.num_params && memory_info.file_bytes == size);
    EXPECT(cappa_model_get_info(bare, &bare_info), CAPPA_OK, "");
    CHECK(bare_info.has_tokenizer == 0);
    EXPECT(cappa_model_get_info(cap_only, &cap_only_info), CAPPA_OK, "");
    CHECK(cap_only_info.can_parallel == 0 && info.can_parallel == 1);

    EXPECT(cappa_model_free(NULL), CAPPA_OK, "");
    EXPECT(cappa_model_free(from_memory), CAPPA_OK, "");
    EXPECT(cappa_model_free(from_memory), CAPPA_ERR_INVALID_HANDLE, "not a live model handle");
    EXPECT(cappa_model_get_info(from_memory, &info), CAPPA_ERR_INVALID_HANDLE,
           "not a live model handle");
    int not_a_model = 42;
    EXPECT(cappa_model_free((cappa_model *)&not_a_model), CAPPA_ERR_INVALID_HANDLE,
           "not a live model handle");
    EXPECT(cappa_model_get_info((cappa_model *)(uintptr_t)0x1230, &info),
           CAPPA_ERR_INVALID_HANDLE, "not a live model handle");
    CHECK(not_a_model == 42);

    /* ---- images ---- */
    cappa_image image;
    EXPECT(cappa_image_load_file(NULL, &image), CAPPA_ERR_NULL_POINTER, "`path` is NULL");
    EXPECT(cappa_image_load_file(image_path, NULL), CAPPA_ERR_NULL_POINTER, "`out_image`");
    EXPECT(cappa_image_load_file("/nonexistent.png", &image), CAPPA_ERR_IO, "/nonexistent.png");
    CHECK(image.pixels == NULL && image.width == 0);
    EXPECT(cappa_image_load_file(argv[0], &image), CAPPA_ERR_IMAGE, argv[0]);
    EXPECT(cappa_image_load_file(truncated_png, &image), CAPPA_ERR_IMAGE, truncated_png);
    EXPECT(cappa_image_load_file(image_path, &image), CAPPA_OK, "");
    CHECK(image.pixels != NULL && image.width > 0 && image.height > 0);
    CHECK(image.stride == image.width * 3u && image.format == CAPPA_PIXEL_RGB8);

    /* ---- captions ---- */
    cappa_caption_params cp = cappa_caption_default_params();
    CHECK(cp.strategy == CAPPA_DECODE_GREEDY && cp.max_len == 0 && cp.beam_width == 4);
    CHECK(fabsf(cp.length_penalty - 0.6f) < 1e-6f && cp.temperature == 1.0f && cp.top_k == 0);
    CHECK(cp.top_p == 1.0f && cp.seed == 0 && cp.on_token == NULL && cp.progress == NULL);
    char *text = (char *)&cp; /* must be overwritten with NULL on failure */
    EXPECT(cappa_caption(NULL, &image, &cp, &text), CAPPA_ERR_NULL_POINTER, "`model` is NULL");
    CHECK(text == NULL);
    EXPECT(cappa_caption((cappa_model *)&not_a_model, &image, &cp, &text),
           CAPPA_ERR_INVALID_HANDLE, "not a live model handle");
    EXPECT(cappa_caption(model, NULL, &cp, &text), CAPPA_ERR_NULL_POINTER, "`image` is NULL");
    EXPECT(cappa_caption(model, &image, &cp, NULL), CAPPA_ERR_NULL_POINTER, "`out_text`");
    cappa_image bad_image = image;
    bad_image.pixels = NULL;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_NULL_POINTER,
           "image: `pixels` is NULL");
    bad_image = image;
    bad_image.width = 0;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "the width is 0");
    bad_image = image;
    bad_image.height = 0;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "the height is 0");
    bad_image = image;
    bad_image.width = CAPPA_MAX_IMAGE_SIDE + 1;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "the width is 65537");
    bad_image = image;
    bad_image.stride = image.width * 3 - 1;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "less than a row");
    bad_image = image;
    bad_image.format = CAPPA_PIXEL_RGBA8; /* 4 bytes a pixel: the RGB stride is too small */
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "less than a row");
    bad_image = image;
    bad_image.stride = SIZE_MAX;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "more than memory");
    bad_image = image;
    bad_image.format = 5;
    EXPECT(cappa_caption(model, &bad_image, &cp, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "unknown pixel format 5");
    cappa_caption_params bad_params = cp;
    bad_params.strategy = 9;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "unknown strategy 9");
    bad_params = cp;
    bad_params.strategy = CAPPA_DECODE_BEAM;
    bad_params.beam_width = 0;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "beam width 0");
    bad_params = cp;
    bad_params.strategy = CAPPA_DECODE_SAMPLE;
    bad_params.temperature = -1.0f;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "temperature");
    bad_params = cp;
    bad_params.strategy = CAPPA_DECODE_SAMPLE;
    bad_params.top_p = 0.0f;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "top_p");
    bad_params = cp;
    bad_params.max_len = info.max_len + 1;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_INVALID_ARGUMENT,
           "max_len");
    EXPECT(cappa_caption(bare, &image, &cp, &text), CAPPA_ERR_UNSUPPORTED, "no tokenizer");
    bad_params = cp;
    bad_params.strategy = CAPPA_DECODE_PARALLEL;
    EXPECT(cappa_caption(cap_only, &image, &bad_params, &text), CAPPA_ERR_UNSUPPORTED,
           "parallel");
    int calls = 0;
    bad_params = cp;
    bad_params.progress = stop_at_once;
    bad_params.progress_user_data = &calls;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_ERR_ABORTED,
           "progress callback returned 0");
    CHECK(calls == 1 && text == NULL);
    /* A token callback that stops: the caption is its first token (not an error). */
    char first[256] = {0};
    bad_params = cp;
    bad_params.on_token = stop_after_first_token;
    bad_params.on_token_user_data = first;
    EXPECT(cappa_caption(model, &image, &bad_params, &text), CAPPA_OK, "");
    CHECK(text != NULL && strcmp(text, first) == 0 && strchr(text, ' ') == NULL);
    EXPECT(cappa_string_free(text), CAPPA_OK, "");
    EXPECT(cappa_caption(model, &image, NULL, &text), CAPPA_OK, "");
    CHECK(text != NULL);

    /* ---- strings ---- */
    EXPECT(cappa_string_free(NULL), CAPPA_OK, "");
    EXPECT(cappa_string_free(text), CAPPA_OK, "");
    EXPECT(cappa_string_free(text), CAPPA_ERR_INVALID_HANDLE, "not a string from cappa");
    char mine[] = "not from cappa";
    EXPECT(cappa_string_free(mine), CAPPA_ERR_INVALID_HANDLE, "not a string from cappa");
    CHECK(strcmp(mine, "not from cappa") == 0);

    /* ---- batches ---- */
    cappa_image images[2] = {image, image};
    images[1].width = image.width / 2;
    char *texts[2] = {(char *)&cp, (char *)&cp};
    float log_probs[2] = {1.0f, 1.0f};
    EXPECT(cappa_caption_batch(model, images, 0, &cp, texts, log_probs),
           CAPPA_ERR_INVALID_ARGUMENT, "`n_images` is 0");
    EXPECT(cappa_caption_batch(model, images, CAPPA_MAX_IMAGES + 1, &cp, texts, log_probs),
           CAPPA_ERR_INVALID_ARGUMENT, "more than the limit");
    EXPECT(cappa_caption_batch(NULL, images, 2, &cp, texts, log_probs), CAPPA_ERR_NULL_POINTER,
           "`model` is NULL");
    CHECK(texts[0] == NULL && texts[1] == NULL);
    EXPECT(cappa_caption_batch(model, NULL, 2, &cp, texts, log_probs), CAPPA_ERR_NULL_POINTER,
           "`images` is NULL");
    EXPECT(cappa_caption_batch(model, images, 2, &cp, NULL, log_probs), CAPPA_ERR_NULL_POINTER,
           "`out_texts` is NULL");
    images[1].stride = 1;
    EXPECT(cappa_caption_batch(model, images, 2, &cp, texts, log_probs),
           CAPPA_ERR_INVALID_ARGUMENT, "images[1]: the stride is 1 bytes");
    CHECK(texts[0] == NULL && texts[1] == NULL && log_probs[0] == 1.0f);
    images[1].stride = image.stride; /* the left half, through the full row stride */
    EXPECT(cappa_caption_batch(model, images, 2, &cp, texts, NULL), CAPPA_OK, "");
    CHECK(texts[0] != NULL && texts[1] != NULL);
    char *single = NULL;
    EXPECT(cappa_caption(model, &images[0], &cp, &single), CAPPA_OK, "");
    CHECK(single != NULL && strcmp(single, texts[0]) == 0);
    EXPECT(cappa_string_free(single), CAPPA_OK, "");
    for (int i = 0; i < 2; i++) EXPECT(cappa_string_free(texts[i]), CAPPA_OK, "");
    EXPECT(cappa_caption_batch(model, images, 2, &cp, texts, log_probs), CAPPA_OK, "");
    CHECK(log_probs[0] <= 0.0f && log_probs[1] <= 0.0f);
    for (int i = 0; i < 2; i++) EXPECT(cappa_string_free(texts[i]), CAPPA_OK, "");

    /* ---- classification ---- */
    cappa_classify_params kp = cappa_classify_default_params();
    CHECK(kp.prompt == NULL && kp.normalize == 0 && kp.progress == NULL);
    const char *labels[3] = {"a red circle", "a blue square", "two green triangles"};
    float scores[3] = {9, 9, 9}, probs[3] = {9, 9, 9};
    EXPECT(cappa_classify(model, &image, 1, labels, 3, &kp, NULL, NULL), CAPPA_ERR_NULL_POINTER,
           "both NULL");
    EXPECT(cappa_classify(NULL, &image, 1, labels, 3, &kp, scores, probs),
           CAPPA_ERR_NULL_POINTER, "`model` is NULL");
    EXPECT(cappa_classify(model, NULL, 1, labels, 3, &kp, scores, probs), CAPPA_ERR_NULL_POINTER,
           "`images` is NULL");
    EXPECT(cappa_classify(model, &image, 0, labels, 3, &kp, scores, probs),
           CAPPA_ERR_INVALID_ARGUMENT, "`n_images` is 0");
    EXPECT(cappa_classify(model, &image, 1, NULL, 3, &kp, scores, probs), CAPPA_ERR_NULL_POINTER,
           "`labels` is NULL");
    EXPECT(cappa_classify(model, &image, 1, labels, 0, &kp, scores, probs),
           CAPPA_ERR_INVALID_ARGUMENT, "`n_labels` is 0");
    EXPECT(cappa_classify(model, &image, 1, labels, CAPPA_MAX_LABELS + 1, &kp, scores, probs),
           CAPPA_ERR_INVALID_ARGUMENT, "more than the limit");
    const char *with_null[3] = {"a red circle", NULL, "a star"};
    EXPECT(cappa_classify(model, &image, 1, with_null, 3, &kp, scores, probs),
           CAPPA_ERR_NULL_POINTER, "`labels[1]` is NULL");
    const char *not_utf8[2] = {"a red circle", "a \xff\xfe star"};
    EXPECT(cappa_classify(model, &image, 1, not_utf8, 2, &kp, scores, probs),
           CAPPA_ERR_INVALID_UTF8, "`labels[1]` is not valid UTF-8");
    cappa_classify_params bad_kp = kp;
    bad_kp.prompt = "a \xc3 photo";
    EXPECT(cappa_classify(model, &image, 1, labels, 3, &bad_kp, scores, probs),
           CAPPA_ERR_INVALID_UTF8, "`params->prompt` is not valid UTF-8");
    bad_kp.prompt = "a photo of a picture of a photo of a picture of a photo of a picture";
    EXPECT(cappa_classify(model, &image, 1, labels, 3, &bad_kp, scores, probs),
           CAPPA_ERR_INVALID_ARGUMENT, "no room");
    bad_image = image;
    bad_image.height = 0;
    EXPECT(cappa_classify(model, &bad_image, 1, labels, 3, &kp, scores, probs),
           CAPPA_ERR_INVALID_ARGUMENT, "images[0]: the height is 0");
    EXPECT(cappa_classify(bare, &image, 1, labels, 3, &kp, scores, probs),
           CAPPA_ERR_UNSUPPORTED, "no tokenizer");
    calls = 0;
    bad_kp = kp;
    bad_kp.progress = stop_at_once;
    bad_kp.progress_user_data = &calls;
    EXPECT(cappa_classify(model, &image, 1, labels, 3, &bad_kp, scores, probs),
           CAPPA_ERR_ABORTED, "progress callback returned 0");
    CHECK(calls == 1 && scores[0] == 9 && probs[2] == 9); /* outputs untouched */
    EXPECT(cappa_classify(model, &image, 1, labels, 3, NULL, scores, probs), CAPPA_OK, "");
    double sum = 0, norm = 0;
    for (int k = 0; k < 3; k++) {
        sum += probs[k];
        norm += exp(scores[k] - scores[0]);
    }
    CHECK(fabs(sum - 1.0) < 1e-5);
    CHECK(fabs(probs[0] - 1.0 / norm) < 1e-5); /* probabilities are the softmax of the scores */
    float only_scores[3];
    EXPECT(cappa_classify(model, &image, 1, labels, 3, NULL, only_scores, NULL), CAPPA_OK, "");
    CHECK(memcmp(only_scores, scores, sizeof scores) == 0);

    /* ---- embeddings ---- */
    size_t len = 12345;
    EXPECT(cappa_embed(model, images, 2, NULL, NULL), CAPPA_ERR_NULL_POINTER, "`len` is NULL");
    EXPECT(cappa_embed(NULL, images, 2, NULL, &len), CAPPA_ERR_NULL_POINTER, "`model` is NULL");
    EXPECT(cappa_embed(model, images, 0, NULL, &len), CAPPA_ERR_INVALID_ARGUMENT,
           "`n_images` is 0");
    EXPECT(cappa_embed(model, NULL, 2, NULL, &len), CAPPA_OK, ""); /* a size query */
    CHECK(len == 2 * (size_t)info.embedding_size);
    float *embeddings = malloc(len * sizeof *embeddings);
    len -= 1;
    EXPECT(cappa_embed(model, images, 2, embeddings, &len), CAPPA_ERR_BUFFER_TOO_SMALL,
           "`out` holds");
    CHECK(len == 2 * (size_t)info.embedding_size);
    EXPECT(cappa_embed(model, NULL, 2, embeddings, &len), CAPPA_ERR_NULL_POINTER,
           "`images` is NULL");
    images[0].format = 0;
    EXPECT(cappa_embed(model, images, 2, embeddings, &len), CAPPA_ERR_INVALID_ARGUMENT,
           "images[0]: unknown pixel format 0");
    images[0].format = CAPPA_PIXEL_RGB8;
    EXPECT(cappa_embed(model, images, 2, embeddings, &len), CAPPA_OK, "");
    CHECK(len == 2 * (size_t)info.embedding_size && isfinite(embeddings[0]));
    free(embeddings);

    /* ---- a panic inside the library (it holds the model table's lock as it panics) ---- */
    EXPECT(cappa_debug_panic(), CAPPA_ERR_PANIC, "panic: cappa_debug_panic was called");
    EXPECT(cappa_model_get_info(model, &info), CAPPA_OK, "");
    EXPECT(cappa_caption(model, &image, NULL, &text), CAPPA_OK, "");
    EXPECT(cappa_string_free(text), CAPPA_OK, "");
    cappa_model *again = NULL;
    EXPECT(cappa_model_load_file(model_path, &mp, &again), CAPPA_OK, "");
    EXPECT(cappa_model_free(again), CAPPA_OK, "");
    EXPECT(cappa_debug_panic(), CAPPA_ERR_PANIC, "internal error");

    /* ---- freeing images ---- */
    cappa_image copy = image;
    EXPECT(cappa_image_free(NULL), CAPPA_ERR_NULL_POINTER, "`image` is NULL");
    cappa_image foreign = image;
    foreign.pixels = (const uint8_t *)mine;
    EXPECT(cappa_image_free(&foreign), CAPPA_ERR_INVALID_HANDLE, "not a buffer from");
    EXPECT(cappa_image_free(&image), CAPPA_OK, "");
    CHECK(image.pixels == NULL && image.width == 0 && image.stride == 0);
    EXPECT(cappa_image_free(&image), CAPPA_OK, ""); /* empty: nothing to do */
    EXPECT(cappa_image_free(&copy), CAPPA_ERR_INVALID_HANDLE, "not a buffer from");

    /* ---- the last error is per thread and survives successful calls ---- */
    EXPECT(cappa_model_free(NULL), CAPPA_OK, "");
    CHECK(strstr(cappa_last_error(), "cappa_image_free:") == cappa_last_error());

    EXPECT(cappa_model_free(cap_only), CAPPA_OK, "");
    EXPECT(cappa_model_free(bare), CAPPA_OK, "");
    EXPECT(cappa_model_free(model), CAPPA_OK, "");
    EXPECT(cappa_model_free(model), CAPPA_ERR_INVALID_HANDLE, "not a live model handle");

    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("ok: %d checks\n", checks);
    return 0;
}
