import Testing
import HummingbirdTesting
import HummingbirdWSTesting
@Test func t2() {}
