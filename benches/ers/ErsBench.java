// Bouncy Castle 1.72's ERS (Debian libbcpkix-java) verifying evidence records, for
// benches/verify_archive.rs to compare hozon with.
//
//   java -cp BC_JARS:CLASSES ErsBench DIR N ROUNDS
//
// DIR holds N pairs i.ers / i.bin (record, data). Each round reads every pair and, as
// ErsTool's `verify` does, checks that the record protects the data now (validatePresent:
// the data's hash, the reduced hash trees, the chain) and verifies the last timestamp's
// signature with its own certificate. The JVM warms up in the first rounds; the best round is
// reported as "records/s R bytes/s B". Exit status 1 if any record fails.

import java.io.File;
import java.nio.file.Files;
import java.util.Date;

import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.tsp.ers.ERSByteData;
import org.bouncycastle.tsp.ers.ERSEvidenceRecord;

public class ErsBench {
    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]);
        int n = Integer.parseInt(args[1]);
        int rounds = Integer.parseInt(args[2]);
        byte[][] records = new byte[n][];
        byte[][] data = new byte[n][];
        long bytes = 0;
        for (int i = 0; i < n; i++) {
            records[i] = Files.readAllBytes(new File(dir, i + ".ers").toPath());
            data[i] = Files.readAllBytes(new File(dir, i + ".bin").toPath());
            bytes += data[i].length;
        }
        var provider = new JcaDigestCalculatorProviderBuilder().build();
        double best = 0;
        for (int r = 0; r < rounds; r++) {
            long t = System.nanoTime();
            for (int i = 0; i < n; i++) {
                ERSEvidenceRecord er = new ERSEvidenceRecord(records[i], provider);
                er.validatePresent(new ERSByteData(data[i]), new Date());
                er.validate(new JcaSimpleSignerInfoVerifierBuilder().build(er.getSigningCertificate()));
            }
            double rate = n / ((System.nanoTime() - t) / 1e9);
            best = Math.max(best, rate);
        }
        System.out.printf("records/s %.1f bytes/s %.1f%n", best, best * bytes / n);
    }
}
