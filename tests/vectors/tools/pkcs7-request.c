/*
 * pkcs7-request: a SCEP PKIOperation request built with OpenSSL's PKCS#7 API, the way sscep
 * builds its own (PKCS7_encrypt for the pkcsPKIEnvelope, a PKCS7 SignedData with the SCEP
 * attributes added to the SignerInfo). Used by ../capture.sh to make the "sscep-shaped" and
 * "Apple-shaped" vectors from an encoder that shares no code with scepd.
 *
 *   pkcs7-request request RECIPIENT.pem SIGNER.pem SIGNER.key CSR.der CIPHER DIGEST \
 *                 MESSAGE_TYPE TRANSACTION_ID NONCE_HEX der|ber OUT.der
 *       der: DER throughout (i2d_PKCS7).
 *       ber: OpenSSL's streaming encoder on both layers: indefinite lengths, and the
 *            eContent and encryptedContent OCTET STRINGs written in CHUNK-byte pieces.
 *   pkcs7-request csr-version CSR.der KEY.pem VERSION OUT.der
 *       rewrites a PKCS#10 request's version field (Apple sends 2) and re-signs it.
 *
 * Build: cc -o pkcs7-request pkcs7-request.c -lcrypto
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

#define CHUNK 256

static void die(const char *what)
{
    fprintf(stderr, "pkcs7-request: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static BIO *open_file(const char *path, const char *mode)
{
    BIO *b = BIO_new_file(path, mode);
    if (b == NULL)
        die(path);
    return b;
}

/* what, unless it is NULL: then the program dies, naming why. */
static void *must(void *what, const char *why)
{
    if (what == NULL)
        die(why);
    return what;
}

static X509 *read_cert(const char *path)
{
    BIO *b = open_file(path, "r");
    X509 *x = must(PEM_read_bio_X509(b, NULL, NULL, NULL), path);
    BIO_free(b);
    return x;
}

static EVP_PKEY *read_key(const char *path)
{
    BIO *b = open_file(path, "r");
    EVP_PKEY *k = must(PEM_read_bio_PrivateKey(b, NULL, NULL, NULL), path);
    BIO_free(b);
    return k;
}

/* The whole file in a memory BIO's buffer; *len gets its length. */
static unsigned char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0)
        die(path);
    *len = ftell(f);
    rewind(f);
    unsigned char *buf = malloc(*len > 0 ? *len : 1);
    if (buf == NULL || fread(buf, 1, *len, f) != (size_t)*len)
        die(path);
    fclose(f);
    return buf;
}

/*
 * Finishes p7 (created with PKCS7_STREAM or PKCS7_PARTIAL) over content and writes it: DER, or
 * streamed the way `openssl smime -stream` does, but writing the content in CHUNK-byte pieces
 * so that the constructed OCTET STRING really has several chunks.
 */
static void write_p7(PKCS7 *p7, const unsigned char *content, long len, int ber, BIO *out)
{
    if (!ber) {
        BIO *in = BIO_new_mem_buf(content, (int)len);
        if (in == NULL || !PKCS7_final(p7, in, PKCS7_BINARY) || !i2d_PKCS7_bio(out, p7))
            die("DER output");
        BIO_free(in);
        return;
    }
    BIO *chain = BIO_new_PKCS7(out, p7);
    if (chain == NULL)
        die("BIO_new_PKCS7");
    for (long off = 0; off < len; off += CHUNK) {
        int n = (int)(len - off < CHUNK ? len - off : CHUNK);
        if (BIO_write(chain, content + off, n) != n)
            die("streaming write");
    }
    if (BIO_flush(chain) <= 0)
        die("streaming flush");
    while (chain != out) {
        BIO *next = BIO_pop(chain);
        BIO_free(chain);
        chain = next;
    }
}

static void add_string(PKCS7_SIGNER_INFO *si, const char *oid, int type, const unsigned char *v, int len)
{
    int nid = OBJ_txt2nid(oid);
    if (nid == NID_undef)
        nid = OBJ_create(oid, NULL, NULL);
    ASN1_STRING *s = ASN1_STRING_type_new(type);
    if (nid == NID_undef || s == NULL || !ASN1_STRING_set(s, v, len) || !PKCS7_add_signed_attribute(si, nid, type, s))
        die(oid);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    die("senderNonce is not hex");
    return 0;
}

static int request(char **argv)
{
    X509 *recipient = read_cert(argv[0]);
    X509 *signer = read_cert(argv[1]);
    EVP_PKEY *signer_key = read_key(argv[2]);
    long csr_len;
    unsigned char *csr = read_file(argv[3], &csr_len);
    const EVP_CIPHER *cipher = EVP_get_cipherbyname(argv[4]);
    const EVP_MD *md = EVP_get_digestbyname(argv[5]);
    const char *message_type = argv[6], *transaction_id = argv[7], *nonce_hex = argv[8];
    int ber = strcmp(argv[9], "ber") == 0;
    if (cipher == NULL || md == NULL)
        die("unknown cipher or digest");

    /* pkcsPKIEnvelope: the CSR encrypted to the RA. */
    STACK_OF(X509) *recipients = sk_X509_new_null();
    sk_X509_push(recipients, recipient);
    PKCS7 *enveloped = PKCS7_encrypt(recipients, NULL, cipher, PKCS7_BINARY | PKCS7_STREAM);
    BIO *env_out = BIO_new(BIO_s_mem());
    if (enveloped == NULL || env_out == NULL)
        die("PKCS7_encrypt");
    write_p7(enveloped, csr, csr_len, ber, env_out);
    unsigned char *env;
    long env_len = BIO_get_mem_data(env_out, &env);

    /* pkiMessage: SignedData over the envelope, SCEP attributes in the SignerInfo. */
    PKCS7 *signed_data = PKCS7_sign(NULL, NULL, NULL, NULL, PKCS7_BINARY | PKCS7_PARTIAL);
    if (signed_data == NULL)
        die("PKCS7_sign");
    PKCS7_SIGNER_INFO *si = PKCS7_sign_add_signer(signed_data, signer, signer_key, md, PKCS7_BINARY | PKCS7_NOSMIMECAP);
    if (si == NULL)
        die("PKCS7_sign_add_signer");
    size_t nonce_len = strlen(nonce_hex) / 2;
    unsigned char nonce[64];
    if (nonce_len > sizeof nonce || strlen(nonce_hex) % 2 != 0)
        die("senderNonce length");
    for (size_t i = 0; i < nonce_len; i++)
        nonce[i] = (unsigned char)(hex_value(nonce_hex[2 * i]) << 4 | hex_value(nonce_hex[2 * i + 1]));
    add_string(si, "2.16.840.1.113733.1.9.2", V_ASN1_PRINTABLESTRING, (const unsigned char *)message_type, -1);
    add_string(si, "2.16.840.1.113733.1.9.7", V_ASN1_PRINTABLESTRING, (const unsigned char *)transaction_id, -1);
    add_string(si, "2.16.840.1.113733.1.9.5", V_ASN1_OCTET_STRING, nonce, (int)nonce_len);

    BIO *out = open_file(argv[10], "wb");
    write_p7(signed_data, env, env_len, ber, out);
    BIO_free(out);
    return 0;
}

static int csr_version(char **argv)
{
    long len;
    unsigned char *der = read_file(argv[0], &len);
    const unsigned char *p = der;
    X509_REQ *req = d2i_X509_REQ(NULL, &p, len);
    EVP_PKEY *key = read_key(argv[1]);
    if (req == NULL || !X509_REQ_set_version(req, atol(argv[2])) || !X509_REQ_sign(req, key, EVP_sha256()))
        die("re-versioning the CSR");
    BIO *out = open_file(argv[3], "wb");
    if (!i2d_X509_REQ_bio(out, req))
        die("CSR output");
    BIO_free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 13 && strcmp(argv[1], "request") == 0)
        return request(argv + 2);
    if (argc == 6 && strcmp(argv[1], "csr-version") == 0)
        return csr_version(argv + 2);
    fprintf(stderr, "usage: see the comment at the top of pkcs7-request.c\n");
    return 2;
}
