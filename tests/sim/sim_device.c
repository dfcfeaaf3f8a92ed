/*
 * sim_device: device facts, check-in and report messages, command parsing; see sim_device.h.
 */
#include "sim_device.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

enum device_family { FAMILY_PHONE, FAMILY_PAD, FAMILY_TV };

struct device_model {
    enum device_family family;
    const char *product_name;
    const char *marketing_name;
    const char *part_number;
    const char *os_version;
    const char *build_version;
    unsigned weight;      /* share of the fleet */
    bool cellular;        /* has an IMEI */
    unsigned capacity_gb; /* nominal storage */
    const char *board_id; /* SoftwareUpdateDeviceID */
    bool attestation;     /* Managed Device Attestation: iPhone/iPad A11+, Apple TV A12+ */
};

/* The fleet mix: about 60% iPhones, 30% iPads, 10% Apple TVs, mostly on 17.x with a few older
 * devices stuck on the last release they support; those before the A11 (iPhone, iPad) or the A12
 * (Apple TV) cannot attest. */
static const struct device_model device_models[] = {
    {FAMILY_PHONE, "iPhone16,1", "iPhone 15 Pro", "MTUV3LL/A", "17.6.1", "21G93", 12, true, 128,
     "D83AP", true},
    {FAMILY_PHONE, "iPhone15,4", "iPhone 15", "MTLX3LL/A", "17.5.1", "21F90", 12, true, 128,
     "D37AP", true},
    {FAMILY_PHONE, "iPhone15,2", "iPhone 14 Pro", "MQ0T3LL/A", "17.4.1", "21E236", 10, true, 256,
     "D73AP", true},
    {FAMILY_PHONE, "iPhone14,5", "iPhone 13", "MLMN3LL/A", "17.3.1", "21D61", 10, true, 128,
     "D17AP", true},
    {FAMILY_PHONE, "iPhone14,6", "iPhone SE (3rd generation)", "MMXM3LL/A", "17.2.1", "21C66", 6,
     true, 64, "D49AP", true},
    {FAMILY_PHONE, "iPhone12,8", "iPhone SE (2nd generation)", "MX9R2LL/A", "16.7.8", "20H343", 4,
     true, 64, "D79AP", true},
    {FAMILY_PHONE, "iPhone10,4", "iPhone 8", "MQ6K2LL/A", "16.7.10", "20H350", 3, true, 64,
     "D201AP", true},
    {FAMILY_PHONE, "iPhone9,3", "iPhone 7", "MN9C2LL/A", "15.8.2", "19H384", 2, true, 32, "D101AP",
     false},
    {FAMILY_PAD, "iPad13,18", "iPad (10th generation)", "MPQ03LL/A", "17.5.1", "21F90", 10, false,
     64, "J271AP", true},
    {FAMILY_PAD, "iPad13,19", "iPad (10th generation)", "MQ6K3LL/A", "17.4.1", "21E236", 4, true,
     64, "J272AP", true},
    {FAMILY_PAD, "iPad14,1", "iPad mini (6th generation)", "MK7M3LL/A", "17.3.1", "21D61", 5, false,
     64, "J310AP", true},
    {FAMILY_PAD, "iPad13,4", "iPad Pro (11-inch) (3rd generation)", "MHQR3LL/A", "17.2.1", "21C66",
     4, false, 128, "J517AP", true},
    {FAMILY_PAD, "iPad7,11", "iPad (7th generation)", "MW742LL/A", "16.7.8", "20H343", 3, false, 32,
     "J171AP", false},
    {FAMILY_PAD, "iPad6,11", "iPad (5th generation)", "MP2F2LL/A", "16.7.8", "20H343", 2, false, 32,
     "J71sAP", false},
    {FAMILY_TV, "AppleTV14,1", "Apple TV 4K (3rd generation)", "MN873LL/A", "17.5", "21L569", 5,
     false, 64, "J255AP", true},
    {FAMILY_TV, "AppleTV11,1", "Apple TV 4K (2nd generation)", "MXGY2LL/A", "17.4", "21L227", 3,
     false, 32, "J305AP", true},
    {FAMILY_TV, "AppleTV6,2", "Apple TV 4K", "MQD22LL/A", "17.2", "21K365", 1, false, 32, "J105aAP",
     false},
    {FAMILY_TV, "AppleTV5,3", "Apple TV HD", "MGY52LL/A", "16.6", "20M73", 1, false, 32, "J42dAP",
     false},
};

#define DEVICE_MODEL_COUNT (sizeof(device_models) / sizeof(device_models[0]))
/* index % 10 of the devices forced onto a model that cannot attest */
#define DEVICE_LEGACY_SLOT 6
#define DEVICE_ATTEST_QUERY "DevicePropertiesAttestation"
#define DEVICE_ATTEST_NONCE "DeviceAttestationNonce"

/* Letters Apple leaves out of serial numbers (no vowels, no O/I look-alikes). */
static const char serial_alphabet[] = "0123456789CDFGHJKLMNPQRTVWXY";

static const char *const answer_status[SIM_ANSWER_COUNT] = {
    [SIM_ANSWER_ACK] = "Acknowledged",
    [SIM_ANSWER_NOTNOW] = "NotNow",
    [SIM_ANSWER_ERROR] = "Error",
    [SIM_ANSWER_FORMAT_ERROR] = "CommandFormatError",
};

/* The DeviceInformation queries this simulator answers (all of them when Queries is absent). */
static const char *const known_queries[] = {
    "UDID",
    "SerialNumber",
    "DeviceName",
    "OSVersion",
    "BuildVersion",
    "SupplementalBuildVersion",
    "ProductName",
    "Model",
    "ModelName",
    "ModelNumber",
    "SoftwareUpdateDeviceID",
    "IMEI",
    "ModemFirmwareVersion",
    "CellularTechnology",
    "DeviceCapacity",
    "AvailableDeviceCapacity",
    "BatteryLevel",
    "WiFiMAC",
    "BluetoothMAC",
    "EthernetMAC",
    "IsSupervised",
    "IsActivationLockEnabled",
    "IsDeviceLocatorServiceEnabled",
    "IsDoNotDisturbInEffect",
    "IsCloudBackupEnabled",
    "IsMDMLostModeEnabled",
    "IsMultiUser",
    "AwaitingConfiguration",
    "TimeZone",
};

#define KNOWN_QUERY_COUNT (sizeof(known_queries) / sizeof(known_queries[0]))

/* Acknowledged reports of these request types carry one result key holding an (empty) list. */
static const char *const list_results[][2] = {
    {"ProfileList", "ProfileList"},
    {"ProvisioningProfileList", "ProvisioningProfileList"},
    {"CertificateList", "CertificateList"},
    {"InstalledApplicationList", "InstalledApplicationList"},
    {"ManagedApplicationList", "ManagedApplicationList"},
    {"AvailableOSUpdates", "AvailableOSUpdates"},
};

#define LIST_RESULT_COUNT (sizeof(list_results) / sizeof(list_results[0]))

bool sim_device_prefix_ok(const char *prefix)
{
    size_t n = strlen(prefix);

    if (n == 0 || n >= SIM_PREFIX_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = prefix[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool device_sha256(const char *text, unsigned char digest[32])
{
    unsigned int n = 0;

    return EVP_Digest(text, strlen(text), digest, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

/* Picks a model by weight; only_legacy limits the choice to the models that cannot attest. */
static const struct device_model *device_model_pick(const unsigned char *hash, bool only_legacy)
{
    unsigned total = 0;
    unsigned pick;

    for (size_t i = 0; i < DEVICE_MODEL_COUNT; i++) {
        if (!only_legacy || !device_models[i].attestation)
            total += device_models[i].weight;
    }
    pick = (((unsigned)hash[0] << 8) | hash[1]) % total;
    for (size_t i = 0; i < DEVICE_MODEL_COUNT; i++) {
        if (only_legacy && device_models[i].attestation)
            continue;
        if (pick < device_models[i].weight)
            return &device_models[i];
        pick -= device_models[i].weight;
    }
    return &device_models[0];
}

static const struct device_model *device_model_find(const char *product_name)
{
    for (size_t i = 0; i < DEVICE_MODEL_COUNT; i++) {
        if (strcmp(device_models[i].product_name, product_name) == 0)
            return &device_models[i];
    }
    return NULL;
}

/* 14 digits plus the Luhn check digit; 35 is the reporting body of Apple's TACs. */
static void device_make_imei(char *out, size_t outlen, const unsigned char *hash,
                             unsigned long index)
{
    char digits[16];
    unsigned sum = 0;

    snprintf(digits, sizeof(digits), "35%06lu%06lu",
             (((unsigned long)hash[20] << 16) | ((unsigned long)hash[21] << 8) | hash[22]) %
                 1000000UL,
             index % 1000000UL);
    for (int i = 0; i < 14; i++) {
        unsigned d = (unsigned)(digits[13 - i] - '0');
        if (i % 2 == 0) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    snprintf(out, outlen, "%s%u", digits, (10 - sum % 10) % 10);
}

bool sim_device_derive(struct sim_device *dev, const char *prefix, unsigned long index)
{
    char seed[SIM_PREFIX_MAX + 32];
    unsigned char h[32];
    const struct device_model *m;
    static const char hex[] = "0123456789ABCDEF";
    char udid_hex[20];

    memset(dev, 0, sizeof(*dev));
    if (!sim_device_prefix_ok(prefix) || index > 999999999999UL)
        return false;
    snprintf(seed, sizeof(seed), "%s/%lu", prefix, index);
    if (!device_sha256(seed, h))
        return false;
    dev->index = index;

    for (int i = 0; i < 9; i++) {
        udid_hex[2 * i] = hex[h[2 + i] >> 4];
        udid_hex[2 * i + 1] = hex[h[2 + i] & 0xf];
    }
    /* Version 4 and RFC 4122 variant nibbles, so it looks like the UUIDs devices report; the
     * last group is the index in decimal, so a UDID in a server log names its device. */
    snprintf(dev->udid, sizeof(dev->udid), "%.8s-%.4s-4%.3s-%c%.3s-%012lu", udid_hex, udid_hex + 8,
             udid_hex + 12, hex[8 + (h[11] & 3)], udid_hex + 15, index);

    for (int i = 0; i < 12; i++)
        dev->serial[i] = serial_alphabet[h[11 + i] % (sizeof(serial_alphabet) - 1)];
    dev->serial[12] = '\0';

    /* Every tenth device (index 6, 16, ...) is an old model on top of the weighted mix, so that
     * even a small fleet has devices that cannot attest. */
    m = device_model_pick(h, index % 10 == DEVICE_LEGACY_SLOT);
    snprintf(dev->product_name, sizeof(dev->product_name), "%s", m->product_name);
    snprintf(dev->model, sizeof(dev->model), "%s", m->part_number);
    snprintf(dev->model_name, sizeof(dev->model_name), "%s",
             m->family == FAMILY_PHONE ? "iPhone"
             : m->family == FAMILY_PAD ? "iPad"
                                       : "Apple TV");
    snprintf(dev->os_version, sizeof(dev->os_version), "%s", m->os_version);
    snprintf(dev->build_version, sizeof(dev->build_version), "%s", m->build_version);
    if (m->cellular)
        device_make_imei(dev->imei, sizeof(dev->imei), h, index);
    snprintf(dev->device_name, sizeof(dev->device_name), "%s %s-%lu", m->marketing_name, prefix,
             index);
    return true;
}

const char *sim_device_answer_status(enum sim_answer answer)
{
    if ((unsigned)answer >= SIM_ANSWER_COUNT)
        return "Unknown";
    return answer_status[answer];
}

static void dict_set_string(plist_t dict, const char *key, const char *value)
{
    plist_dict_set_item(dict, key, plist_new_string(value));
}

/* Serialises and frees p; returns a malloc()ed copy so callers free with free(). */
static char *device_xml(plist_t p, size_t *len)
{
    char *xml = NULL;
    uint32_t n = 0;
    char *out;

    plist_to_xml(p, &xml, &n);
    plist_free(p);
    if (xml == NULL)
        return NULL;
    out = malloc((size_t)n + 1);
    if (out != NULL) {
        memcpy(out, xml, n);
        out[n] = '\0';
        *len = n;
    }
    plist_to_xml_free(xml);
    return out;
}

static bool device_random_uuid(char *out, size_t outlen)
{
    unsigned char b[16];

    if (RAND_bytes(b, sizeof(b)) != 1)
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, outlen, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return true;
}

static plist_t device_checkin_dict(const struct sim_device *dev, const char *message_type,
                                   const char *topic)
{
    plist_t d = plist_new_dict();

    dict_set_string(d, "MessageType", message_type);
    dict_set_string(d, "Topic", topic);
    dict_set_string(d, "UDID", dev->udid);
    return d;
}

char *sim_device_authenticate(const struct sim_device *dev, const char *topic, size_t *len)
{
    plist_t d = device_checkin_dict(dev, "Authenticate", topic);

    dict_set_string(d, "SerialNumber", dev->serial);
    dict_set_string(d, "Model", dev->model);
    dict_set_string(d, "ModelName", dev->model_name);
    dict_set_string(d, "ProductName", dev->product_name);
    dict_set_string(d, "OSVersion", dev->os_version);
    dict_set_string(d, "BuildVersion", dev->build_version);
    dict_set_string(d, "DeviceName", dev->device_name);
    if (dev->imei[0] != '\0')
        dict_set_string(d, "IMEI", dev->imei);
    return device_xml(d, len);
}

bool sim_device_push_token_new(struct sim_push_token *tok)
{
    memset(tok, 0, sizeof(*tok));
    if (RAND_bytes(tok->token, sizeof(tok->token)) != 1 ||
        !device_random_uuid(tok->push_magic, sizeof(tok->push_magic)))
        return false;
    tok->present = true;
    return true;
}

char *sim_device_token_update(const struct sim_device *dev, const char *topic,
                              const struct sim_push_token *tok, size_t *len)
{
    plist_t d;

    if (!tok->present)
        return NULL;
    d = device_checkin_dict(dev, "TokenUpdate", topic);
    plist_dict_set_item(d, "Token", plist_new_data((const char *)tok->token, sizeof(tok->token)));
    dict_set_string(d, "PushMagic", tok->push_magic);
    plist_dict_set_item(d, "AwaitingConfiguration", plist_new_bool(0));
    return device_xml(d, len);
}

char *sim_device_checkout(const struct sim_device *dev, const char *topic, size_t *len)
{
    return device_xml(device_checkin_dict(dev, "CheckOut", topic), len);
}

char *sim_device_idle(const struct sim_device *dev, size_t *len)
{
    plist_t d = plist_new_dict();

    dict_set_string(d, "Status", "Idle");
    dict_set_string(d, "UDID", dev->udid);
    return device_xml(d, len);
}

/* Stable per-device numbers for the answers (MAC addresses, free space, battery). */
static void device_answer_hash(const struct sim_device *dev, unsigned char h[32])
{
    if (!device_sha256(dev->udid, h))
        memset(h, 0x5a, 32);
}

static void device_mac(char *out, size_t outlen, const unsigned char *h)
{
    /* Locally administered, unicast: what a device with MAC randomisation reports. */
    snprintf(out, outlen, "%02x:%02x:%02x:%02x:%02x:%02x", (h[0] & 0xfc) | 0x02, h[1], h[2], h[3],
             h[4], h[5]);
}

/* The value of one DeviceInformation query, or NULL when this device does not know it. */
static plist_t device_query_value(const struct sim_device *dev, const char *query,
                                  const unsigned char *h)
{
    const struct device_model *m = device_model_find(dev->product_name);
    enum device_family family = m != NULL ? m->family : FAMILY_PHONE;
    double capacity = (m != NULL ? m->capacity_gb : 64) * 0.93;
    char buf[32];

    if (strcmp(query, "UDID") == 0)
        return plist_new_string(dev->udid);
    if (strcmp(query, "SerialNumber") == 0)
        return plist_new_string(dev->serial);
    if (strcmp(query, "DeviceName") == 0)
        return plist_new_string(dev->device_name);
    if (strcmp(query, "OSVersion") == 0)
        return plist_new_string(dev->os_version);
    if (strcmp(query, "BuildVersion") == 0 || strcmp(query, "SupplementalBuildVersion") == 0)
        return plist_new_string(dev->build_version);
    if (strcmp(query, "ProductName") == 0)
        return plist_new_string(dev->product_name);
    if (strcmp(query, "Model") == 0)
        return plist_new_string(dev->model);
    if (strcmp(query, "ModelName") == 0)
        return plist_new_string(dev->model_name);
    if (strcmp(query, "ModelNumber") == 0) {
        snprintf(buf, sizeof(buf), "%.5s", dev->model);
        return plist_new_string(buf);
    }
    if (strcmp(query, "SoftwareUpdateDeviceID") == 0)
        return m != NULL ? plist_new_string(m->board_id) : NULL;
    if (strcmp(query, "IMEI") == 0)
        return dev->imei[0] != '\0' ? plist_new_string(dev->imei) : NULL;
    if (strcmp(query, "ModemFirmwareVersion") == 0)
        return dev->imei[0] != '\0' ? plist_new_string("1.50.03") : NULL;
    if (strcmp(query, "CellularTechnology") == 0)
        return family == FAMILY_TV ? NULL : plist_new_uint(dev->imei[0] != '\0' ? 3 : 0);
    if (strcmp(query, "DeviceCapacity") == 0)
        return plist_new_real(capacity);
    if (strcmp(query, "AvailableDeviceCapacity") == 0)
        return plist_new_real(capacity * (0.2 + (h[6] % 60) / 100.0));
    if (strcmp(query, "BatteryLevel") == 0)
        return family == FAMILY_TV ? NULL : plist_new_real(0.2 + (h[7] % 81) / 100.0);
    if (strcmp(query, "WiFiMAC") == 0) {
        device_mac(buf, sizeof(buf), h + 8);
        return plist_new_string(buf);
    }
    if (strcmp(query, "BluetoothMAC") == 0) {
        device_mac(buf, sizeof(buf), h + 14);
        return plist_new_string(buf);
    }
    if (strcmp(query, "EthernetMAC") == 0) {
        if (family != FAMILY_TV)
            return NULL;
        device_mac(buf, sizeof(buf), h + 20);
        return plist_new_string(buf);
    }
    if (strcmp(query, "IsSupervised") == 0)
        return plist_new_bool(1);
    if (strcmp(query, "IsActivationLockEnabled") == 0 ||
        strcmp(query, "IsDeviceLocatorServiceEnabled") == 0 ||
        strcmp(query, "IsDoNotDisturbInEffect") == 0 || strcmp(query, "AwaitingConfiguration") == 0)
        return plist_new_bool(0);
    if (strcmp(query, "IsCloudBackupEnabled") == 0 || strcmp(query, "IsMDMLostModeEnabled") == 0)
        return family == FAMILY_TV ? NULL : plist_new_bool(0);
    if (strcmp(query, "IsMultiUser") == 0)
        return family == FAMILY_PAD ? plist_new_bool(0) : NULL;
    if (strcmp(query, "TimeZone") == 0)
        return plist_new_string("America/Los_Angeles");
    return NULL;
}

static void device_add_query(plist_t responses, const struct sim_device *dev, const char *query,
                             const unsigned char *h)
{
    plist_t value = device_query_value(dev, query, h);

    if (value != NULL)
        plist_dict_set_item(responses, query, value);
}

static plist_t device_query_responses(const struct sim_device *dev, const struct sim_command *cmd,
                                      const struct sim_attest_items *attestation)
{
    plist_t responses = plist_new_dict();
    plist_t command = plist_dict_get_item(cmd->plist, "Command");
    plist_t queries = command != NULL ? plist_dict_get_item(command, "Queries") : NULL;
    uint32_t n = 0;
    unsigned char h[32];

    device_answer_hash(dev, h);
    if (queries != NULL && plist_get_node_type(queries) == PLIST_ARRAY)
        n = plist_array_get_size(queries);
    if (attestation != NULL) {
        plist_t items = plist_new_array();
        for (size_t i = 0; i < attestation->count && i < SIM_ATTEST_ITEMS_MAX; i++)
            plist_array_append_item(
                items, plist_new_data((const char *)attestation->der[i], attestation->len[i]));
        plist_dict_set_item(responses, DEVICE_ATTEST_QUERY, items);
    }
    if (n == 0) {
        for (size_t i = 0; i < KNOWN_QUERY_COUNT; i++)
            device_add_query(responses, dev, known_queries[i], h);
        return responses;
    }
    for (uint32_t i = 0; i < n; i++) {
        plist_t item = plist_array_get_item(queries, i);
        const char *query;

        if (item == NULL || plist_get_node_type(item) != PLIST_STRING)
            continue;
        query = plist_get_string_ptr(item, NULL);
        if (query != NULL)
            device_add_query(responses, dev, query, h);
    }
    return responses;
}

static void device_add_results(plist_t report, const struct sim_device *dev,
                               const struct sim_command *cmd,
                               const struct sim_attest_items *attestation)
{
    if (strcmp(cmd->request_type, "DeviceInformation") == 0) {
        plist_dict_set_item(report, "QueryResponses",
                            device_query_responses(dev, cmd, attestation));
        return;
    }
    if (strcmp(cmd->request_type, "SecurityInfo") == 0) {
        plist_t info = plist_new_dict();
        plist_dict_set_item(info, "HardwareEncryptionCaps", plist_new_uint(3));
        plist_dict_set_item(info, "PasscodePresent", plist_new_bool(0));
        plist_dict_set_item(info, "PasscodeCompliant", plist_new_bool(1));
        plist_dict_set_item(info, "PasscodeCompliantWithProfiles", plist_new_bool(1));
        plist_dict_set_item(report, "SecurityInfo", info);
        return;
    }
    for (size_t i = 0; i < LIST_RESULT_COUNT; i++) {
        if (strcmp(cmd->request_type, list_results[i][0]) == 0) {
            plist_dict_set_item(report, list_results[i][1], plist_new_array());
            return;
        }
    }
}

static plist_t device_error_chain(const struct sim_command *cmd)
{
    plist_t chain = plist_new_array();
    plist_t error = plist_new_dict();
    char text[SIM_REQUEST_TYPE_MAX + 64];

    snprintf(text, sizeof(text), "The simulated device refused the %s command.", cmd->request_type);
    plist_dict_set_item(error, "ErrorCode", plist_new_uint(12021));
    dict_set_string(error, "ErrorDomain", "MCMDMErrorDomain");
    dict_set_string(error, "LocalizedDescription", text);
    dict_set_string(error, "USEnglishDescription", text);
    plist_array_append_item(chain, error);
    return chain;
}

char *sim_device_report(const struct sim_device *dev, const struct sim_command *cmd,
                        enum sim_answer answer, const struct sim_attest_items *attestation,
                        size_t *len)
{
    plist_t d = plist_new_dict();

    dict_set_string(d, "UDID", dev->udid);
    dict_set_string(d, "CommandUUID", cmd->uuid);
    dict_set_string(d, "Status", sim_device_answer_status(answer));
    if (answer == SIM_ANSWER_ACK)
        device_add_results(d, dev, cmd, attestation);
    else if (answer == SIM_ANSWER_ERROR)
        plist_dict_set_item(d, "ErrorChain", device_error_chain(cmd));
    return device_xml(d, len);
}

bool sim_device_supports_attestation(const struct sim_device *dev)
{
    const struct device_model *m = device_model_find(dev->product_name);

    return m != NULL && m->attestation;
}

const char *sim_device_software_update_id(const struct sim_device *dev)
{
    const struct device_model *m = device_model_find(dev->product_name);

    return m != NULL ? m->board_id : NULL;
}

enum sim_attest_ask sim_device_attest_request(const struct sim_command *cmd,
                                              unsigned char nonce[SIM_NONCE_MAX], size_t *nonce_len)
{
    plist_t command = plist_dict_get_item(cmd->plist, "Command");
    plist_t queries = command != NULL ? plist_dict_get_item(command, "Queries") : NULL;
    plist_t node;
    const char *data;
    uint64_t n = 0;
    bool asked = false;

    *nonce_len = 0;
    if (strcmp(cmd->request_type, "DeviceInformation") != 0 || queries == NULL ||
        plist_get_node_type(queries) != PLIST_ARRAY)
        return SIM_ATTEST_NOT_ASKED;
    for (uint32_t i = 0; i < plist_array_get_size(queries) && !asked; i++) {
        plist_t item = plist_array_get_item(queries, i);
        const char *q = item != NULL && plist_get_node_type(item) == PLIST_STRING
                            ? plist_get_string_ptr(item, NULL)
                            : NULL;
        /* Exactly this name: Apple answers DeviceAttestation and the like without one. */
        asked = q != NULL && strcmp(q, DEVICE_ATTEST_QUERY) == 0;
    }
    if (!asked)
        return SIM_ATTEST_NOT_ASKED;
    node = plist_dict_get_item(command, DEVICE_ATTEST_NONCE);
    if (node == NULL)
        return SIM_ATTEST_ASKED;
    if (plist_get_node_type(node) != PLIST_DATA)
        return SIM_ATTEST_BAD_NONCE;
    data = plist_get_data_ptr(node, &n);
    if (data == NULL || n == 0 || n > SIM_NONCE_MAX)
        return SIM_ATTEST_BAD_NONCE;
    memcpy(nonce, data, (size_t)n);
    *nonce_len = (size_t)n;
    return SIM_ATTEST_ASKED;
}

/* Copies a non-empty string value of dict[key] into out; false when absent, empty or too long. */
static bool device_get_string(plist_t dict, const char *key, char *out, size_t outlen)
{
    plist_t node = plist_dict_get_item(dict, key);
    const char *s;
    uint64_t n = 0;

    if (node == NULL || plist_get_node_type(node) != PLIST_STRING)
        return false;
    s = plist_get_string_ptr(node, &n);
    if (s == NULL || n == 0 || n >= outlen)
        return false;
    memcpy(out, s, (size_t)n);
    out[n] = '\0';
    return true;
}

bool sim_device_parse_command(const char *body, size_t len, struct sim_command *cmd, char *err,
                              size_t errlen)
{
    plist_t root = NULL;
    plist_t command;

    memset(cmd, 0, sizeof(*cmd));
    if (len == 0 || len > UINT32_MAX) {
        snprintf(err, errlen, "command body has a bad length (%zu)", len);
        return false;
    }
    plist_from_memory(body, (uint32_t)len, &root);
    if (root == NULL) {
        snprintf(err, errlen, "command body is not a plist");
        return false;
    }
    if (plist_get_node_type(root) != PLIST_DICT) {
        snprintf(err, errlen, "command plist is not a dict");
        goto fail;
    }
    if (!device_get_string(root, "CommandUUID", cmd->uuid, sizeof(cmd->uuid))) {
        snprintf(err, errlen, "command has no usable CommandUUID string");
        goto fail;
    }
    command = plist_dict_get_item(root, "Command");
    if (command == NULL || plist_get_node_type(command) != PLIST_DICT) {
        snprintf(err, errlen, "command %s has no Command dict", cmd->uuid);
        goto fail;
    }
    if (!device_get_string(command, "RequestType", cmd->request_type, sizeof(cmd->request_type))) {
        snprintf(err, errlen, "command %s has no usable Command.RequestType string", cmd->uuid);
        goto fail;
    }
    cmd->plist = root;
    return true;
fail:
    plist_free(root);
    return false;
}

void sim_device_command_free(struct sim_command *cmd)
{
    if (cmd->plist != NULL)
        plist_free(cmd->plist);
    cmd->plist = NULL;
}
