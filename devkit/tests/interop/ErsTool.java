// Bouncy Castle 1.72 ERS (Debian libbcpkix-java) as the interop judge for hozon's RFC 4998
// evidence records. Compiled and run by devkit/tests/ers_bouncycastle.rs.
//
//   verify RECORD DATA            BC reads RECORD, checks DATA is protected by it now
//                                 (validatePresent) and the last timestamp's signature
//                                 (validate with its signing certificate); prints "OK"
//   make OPENSSL_CNF OUT DATA...  one evidence record per DATA file, all under one
//                                 SHA-256 tree and one timestamp from `openssl ts -reply`
//                                 (configured by OPENSSL_CNF); OUT/0.ers, OUT/1.ers, ...
//   renew-ts OPENSSL_CNF RECORD OUT             timestamp renewal (same algorithm)
//   renew-hash OPENSSL_CNF RECORD DATA OUT      hash-tree renewal to SHA-512
//
// Exit status 0 on success; 1 with the exception on stderr otherwise.

import java.io.File;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;

import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.operator.DigestCalculator;
import org.bouncycastle.operator.DigestCalculatorProvider;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.TimeStampRequest;
import org.bouncycastle.tsp.TimeStampRequestGenerator;
import org.bouncycastle.tsp.TimeStampResponse;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStamp;
import org.bouncycastle.tsp.ers.ERSArchiveTimeStampGenerator;
import org.bouncycastle.tsp.ers.ERSByteData;
import org.bouncycastle.tsp.ers.ERSData;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;
import org.bouncycastle.tsp.ers.ERSEvidenceRecordGenerator;

public class ErsTool {
    static DigestCalculatorProvider provider() throws Exception {
        return new JcaDigestCalculatorProviderBuilder().build();
    }

    static DigestCalculator digest(String name) throws Exception {
        AlgorithmIdentifier id = name.equals("sha512")
            ? new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha512)
            : new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256);
        return provider().get(id);
    }

    static TimeStampRequestGenerator requests() {
        TimeStampRequestGenerator gen = new TimeStampRequestGenerator();
        gen.setCertReq(true);
        return gen;
    }

    /** Has `openssl ts -reply` answer the request, as a TSA would. */
    static TimeStampResponse stamp(String cnf, TimeStampRequest req) throws Exception {
        File q = File.createTempFile("ers", ".tsq");
        File r = File.createTempFile("ers", ".tsr");
        Files.write(q.toPath(), req.getEncoded());
        Process p = new ProcessBuilder("openssl", "ts", "-reply", "-config", cnf,
            "-queryfile", q.getPath(), "-out", r.getPath()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new RuntimeException("openssl ts -reply failed: " + out);
        }
        TimeStampResponse resp = new TimeStampResponse(Files.readAllBytes(r.toPath()));
        resp.validate(req);
        q.delete();
        r.delete();
        return resp;
    }

    static ERSEvidenceRecord read(String path) throws Exception {
        return new ERSEvidenceRecord(Files.readAllBytes(new File(path).toPath()), provider());
    }

    public static void main(String[] args) throws Exception {
        try {
            switch (args[0]) {
                case "verify": {
                    ERSEvidenceRecord er = read(args[1]);
                    byte[] data = Files.readAllBytes(new File(args[2]).toPath());
                    er.validatePresent(new ERSByteData(data), new Date());
                    er.validate(new JcaSimpleSignerInfoVerifierBuilder().build(er.getSigningCertificate()));
                    System.out.println("OK");
                    break;
                }
                case "make": {
                    ERSArchiveTimeStampGenerator gen = new ERSArchiveTimeStampGenerator(digest("sha256"));
                    List<ERSData> data = new ArrayList<>();
                    for (int i = 3; i < args.length; i++) {
                        data.add(new ERSByteData(Files.readAllBytes(new File(args[i]).toPath())));
                    }
                    gen.addAllData(data);
                    TimeStampRequest req = gen.generateTimeStampRequest(requests());
                    List<ERSArchiveTimeStamp> ats = gen.generateArchiveTimeStamps(stamp(args[1], req));
                    List<ERSEvidenceRecord> ers = new ERSEvidenceRecordGenerator(provider()).generate(ats);
                    // generate() returns the records in the order of the sorted leaves; find
                    // each data object's record by asking which one contains it.
                    for (int i = 0; i < data.size(); i++) {
                        for (ERSEvidenceRecord er : ers) {
                            if (er.isContaining(data.get(i), new Date())) {
                                Files.write(new File(args[2], i + ".ers").toPath(), er.getEncoded());
                            }
                        }
                    }
                    System.out.println("OK");
                    break;
                }
                case "renew-ts": {
                    ERSEvidenceRecord er = read(args[2]);
                    TimeStampRequest req = er.generateTimeStampRenewalRequest(requests());
                    ERSEvidenceRecord renewed = er.renewTimeStamp(stamp(args[1], req));
                    Files.write(new File(args[3]).toPath(), renewed.getEncoded());
                    System.out.println("OK");
                    break;
                }
                case "renew-hash": {
                    ERSEvidenceRecord er = read(args[2]);
                    ERSData data = new ERSByteData(Files.readAllBytes(new File(args[3]).toPath()));
                    DigestCalculator d = digest("sha512");
                    TimeStampRequest req = er.generateHashRenewalRequest(d, data, requests());
                    ERSEvidenceRecord renewed = er.renewHash(digest("sha512"), data, stamp(args[1], req));
                    Files.write(new File(args[4]).toPath(), renewed.getEncoded());
                    System.out.println("OK");
                    break;
                }
                default:
                    throw new IllegalArgumentException("unknown command " + args[0]);
            }
        } catch (Exception e) {
            System.err.println("ErsTool " + args[0] + ": " + e);
            System.exit(1);
        }
    }
}
