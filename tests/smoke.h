/* Shared by compile_c.c and compile_cpp.cpp: quantize a small layer, run it,
   save and load it. 0 on success. Both copies must agree with the runner's. */
static int smoke(void) {
    enum { N = 5, K = 40, M = 3 };
    float W[N * K], X[M * K], Y[M * N];
    w4a8_config cfg;
    w4a8_layer *layer = 0, *back = 0;
    unsigned char buf[1024];
    size_t bytes = 0;
    int i, bad = 0;
    for (i = 0; i < N * K; i++) W[i] = (float)((i * 37) % 17 - 8) / 8.0f;
    for (i = 0; i < M * K; i++) X[i] = (float)((i * 11) % 13 - 6);
    if (w4a8_config_init(&cfg) != W4A8_OK) return 1;
    cfg.group_size = 32;
    if (w4a8_layer_quantize(W, N, K, 0, 0, &cfg, &layer) != W4A8_OK) return 2;
    bad |= w4a8_layer_forward(layer, X, M, Y, 0, 0) != W4A8_OK;
    bad |= w4a8_layer_save_size(layer, &bytes) != W4A8_OK || bytes > sizeof buf;
    bad |= bad || w4a8_layer_save_mem(layer, buf, bytes) != W4A8_OK;
    bad |= bad || w4a8_layer_load_mem(buf, bytes, W4A8_KERNEL_AUTO, &back) != W4A8_OK;
    w4a8_layer_free(layer);
    w4a8_layer_free(back);
    return bad ? 3 : 0;
}
