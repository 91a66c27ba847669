/*
 * One model, eight threads: every thread runs every task (each decoding strategy on each of four
 * images, a batch, a classification, embeddings) on the same model handle at the same time,
 * starting at a different task, and every result must equal the one computed on a single
 * thread beforehand. Run by ffi/tests/c_api.rs:
 *
 *     threads MODEL IMAGE [cpu|gpu|auto]
 *
 * Prints "ok: N results compared" and exits 0, or lists the mismatches and exits 1.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cappa.h"

#define THREADS 8
#define ROUNDS 2
#define N_IMAGES 4
#define N_STRATEGIES 4
#define N_LABELS 5

static cappa_model *model;
static cappa_model_info info;
static cappa_image images[N_IMAGES];
static const char *labels[N_LABELS] = {"a red circle", "a blue square", "two green triangles",
                                       "the picture", "a small star on the left"};

/* What every thread must reproduce. */
static char *captions[N_IMAGES][N_STRATEGIES];
static char *batch[N_IMAGES];
static float probabilities[N_IMAGES * N_LABELS];
static float *embeddings;
static size_t embeddings_len;

static void die(cappa_status s, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", what, cappa_status_string(s), cappa_last_error());
    exit(1);
}

static cappa_caption_params params_for(int strategy) {
    cappa_caption_params p = cappa_caption_default_params();
    p.strategy = strategy;
    p.seed = 11;
    p.beam_width = 3;
    return p;
}

enum { TASKS = N_IMAGES * N_STRATEGIES + 3 };

/* Runs task `t`; returns the number of mismatches (0 or 1). With `record`, stores the result. */
static int run_task(int t, int record) {
    cappa_status s;
    if (t < N_IMAGES * N_STRATEGIES) {
        int i = t / N_STRATEGIES, k = t % N_STRATEGIES;
        if (k == CAPPA_DECODE_PARALLEL && !info.can_parallel) return 0;
        cappa_caption_params p = params_for(k);
        char *text = NULL;
        if ((s = cappa_caption(model, &images[i], &p, &text)) != CAPPA_OK) die(s, "cappa_caption");
        if (record) {
            captions[i][k] = text;
            return 0;
        }
        int bad = strcmp(text, captions[i][k]) != 0;
        if (bad) fprintf(stderr, "image %d strategy %d: \"%s\" != \"%s\"\n", i, k, text, captions[i][k]);
        if ((s = cappa_string_free(text)) != CAPPA_OK) die(s, "cappa_string_free");
        return bad;
    }
    if (t == N_IMAGES * N_STRATEGIES) {
        cappa_caption_params p = params_for(CAPPA_DECODE_BEAM);
        char *texts[N_IMAGES];
        if ((s = cappa_caption_batch(model, images, N_IMAGES, &p, texts, NULL)) != CAPPA_OK)
            die(s, "cappa_caption_batch");
        int bad = 0;
        for (int i = 0; i < N_IMAGES; i++) {
            if (record) {
                batch[i] = texts[i];
                continue;
            }
            if (strcmp(texts[i], batch[i]) != 0) {
                fprintf(stderr, "batch image %d: \"%s\" != \"%s\"\n", i, texts[i], batch[i]);
                bad = 1;
            }
            if ((s = cappa_string_free(texts[i])) != CAPPA_OK) die(s, "cappa_string_free");
        }
        return bad;
    }
    if (t == N_IMAGES * N_STRATEGIES + 1) {
        float probs[N_IMAGES * N_LABELS];
        cappa_classify_params p = cappa_classify_default_params();
        p.prompt = "a picture of";
        if ((s = cappa_classify(model, images, N_IMAGES, labels, N_LABELS, &p, NULL, probs)) !=
            CAPPA_OK)
            die(s, "cappa_classify");
        if (record) {
            memcpy(probabilities, probs, sizeof probs);
            return 0;
        }
        int bad = memcmp(probs, probabilities, sizeof probs) != 0;
        if (bad) fprintf(stderr, "classification differs\n");
        return bad;
    }
    size_t len = embeddings_len;
    float *e = malloc(len * sizeof *e);
    if ((s = cappa_embed(model, images, N_IMAGES, e, &len)) != CAPPA_OK) die(s, "cappa_embed");
    if (record) {
        embeddings = e;
        return 0;
    }
    int bad = memcmp(e, embeddings, len * sizeof *e) != 0;
    if (bad) fprintf(stderr, "embeddings differ\n");
    free(e);
    return bad;
}

static void *worker(void *arg) {
    intptr_t id = (intptr_t)arg, bad = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int j = 0; j < TASKS; j++) bad += run_task((int)((id + j) % TASKS), 0);
    return (void *)bad;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL IMAGE [cpu|gpu|auto]\n", argv[0]);
        return 2;
    }
    cappa_model_params mp = cappa_model_default_params();
    if (argc > 3) {
        mp.device = strcmp(argv[3], "gpu") == 0   ? CAPPA_DEVICE_GPU
                    : strcmp(argv[3], "cpu") == 0 ? CAPPA_DEVICE_CPU
                                                  : CAPPA_DEVICE_AUTO;
    }
    cappa_status s;
    if ((s = cappa_model_load_file(argv[1], &mp, &model)) != CAPPA_OK) die(s, "loading the model");
    if ((s = cappa_model_get_info(model, &info)) != CAPPA_OK) die(s, "cappa_model_get_info");
    printf("device: %s\n", info.device);

    /* The sample image, its left half (a view through the row stride), a padded RGBA
       gradient and an RGB checkerboard. */
    if ((s = cappa_image_load_file(argv[2], &images[0])) != CAPPA_OK) die(s, "loading the image");
    images[1] = images[0];
    images[1].width /= 2;
    enum { GW = 37, GH = 29, GSTRIDE = GW * 4 + 12, CW = 50, CH = 40 };
    static uint8_t gradient[GH * GSTRIDE], checker[CH * CW * 3];
    for (int y = 0; y < GH; y++)
        for (int x = 0; x < GW; x++) {
            uint8_t *p = gradient + y * GSTRIDE + x * 4;
            p[0] = (uint8_t)(x * 7), p[1] = (uint8_t)(y * 9), p[2] = (uint8_t)(x * y), p[3] = 255;
        }
    for (int y = 0; y < CH; y++)
        for (int x = 0; x < CW; x++)
            memset(checker + (y * CW + x) * 3, ((x / 5 + y / 5) % 2) ? 230 : 20, 3);
    images[2] = (cappa_image){gradient, GW, GH, GSTRIDE, CAPPA_PIXEL_RGBA8};
    images[3] = (cappa_image){checker, CW, CH, 0, CAPPA_PIXEL_RGB8};

    if ((s = cappa_embed(model, images, N_IMAGES, NULL, &embeddings_len)) != CAPPA_OK)
        die(s, "cappa_embed");
    for (int t = 0; t < TASKS; t++) run_task(t, 1);

    pthread_t threads[THREADS];
    for (intptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)i) != 0) return 1;
    intptr_t mismatches = 0;
    for (int i = 0; i < THREADS; i++) {
        void *bad;
        pthread_join(threads[i], &bad);
        mismatches += (intptr_t)bad;
    }

    int compared = THREADS * ROUNDS * TASKS;
    for (int i = 0; i < N_IMAGES; i++) {
        for (int k = 0; k < N_STRATEGIES; k++) cappa_string_free(captions[i][k]);
        cappa_string_free(batch[i]);
    }
    free(embeddings);
    cappa_image_free(&images[0]);
    cappa_model_free(model);
    if (mismatches) {
        fprintf(stderr, "%ld of %d results differ from the single-threaded ones\n",
                (long)mismatches, compared);
        return 1;
    }
    printf("ok: %d results compared\n", compared);
    return 0;
}
