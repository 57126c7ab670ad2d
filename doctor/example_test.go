package doctor_test

import (
	"context"
	"fmt"

	"github.com/cloneiso/cloneiso/doctor"
)

// Check runs the checks of the parts given (here only the JWT settings; a deployment
// also gives its *sql.DB as the application role, its *objectstore.Bucket and its
// *vectorstore.Index) and names the cause of every finding. An issuer that is not an
// https URL, such as the host app's development default, is reported with why.
func Example() {
	r, err := doctor.Check(context.Background(), &doctor.Config{
		CheckJWT:    true,
		JWTIssuer:   "https://id.example.com/",
		JWTAudience: "cloneiso",
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(r.OK(), r)

	r, err = doctor.Check(context.Background(), &doctor.Config{CheckJWT: true, JWTIssuer: "cloneiso-hostapp", JWTAudience: "*"})
	if err != nil {
		panic(err)
	}
	for _, f := range r.Findings {
		fmt.Println(f.Area, f.Code)
	}
	// Output:
	// true no isolation problems found in: jwt
	// jwt jwt-issuer-not-https
	// jwt jwt-audience-not-pinned
}
